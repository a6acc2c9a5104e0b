//! Wording pools: the phrases prompts are composed from.
//!
//! Entries may contain slots, `{name}` for another pool (filled recursively)
//! or `{a-b}` for an integer in `a..=b`; anything else in braces is written as
//! is. The pools are written from how people phrase requests to a model, not
//! from any detector: organic users and operators draw from the same language,
//! so wording alone does not tell them apart.
//!
//! A perturbation (`--perturb N`) keeps a random subset of every pool (see
//! [`Pools::new`]), so detection tuned to particular phrasings shows it.

use rand::Rng;

use super::knobs::POOL_KEEP;
use super::prose::fill_slots;
use super::random::{name_hash, rng_of};

macro_rules! pools {
    ($( $(#[doc = $doc:literal])* $id:ident $name:literal = [ $($s:literal),* $(,)? ]; )*) => {
        /// A wording pool.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum P { $( $(#[doc = $doc])* $id, )* }

        const ALL: &[(&str, &[&str])] = &[ $( ($name, &[$($s),*]), )* ];

        impl P {
            fn of_name(name: &str) -> Option<P> {
                match name { $( $name => Some(P::$id), )* _ => None }
            }
        }
    };
}

pools! {
    // ------------------------------------------------------------ openers
    /// Greetings.
    Greet "greet" = [
        "Hi", "Hello", "Hey", "Hey there", "Hi there", "Good morning", "Good afternoon",
        "Good evening", "Hiya", "Greetings", "Hello again", "Howdy", "Morning", "Hi all",
        "Hey hey", "Heya", "Hello friend", "Evening", "Hi again", "Salut",
    ];
    /// What the writer is doing (gerund phrases).
    Purpose "purpose" = [
        "preparing for a technical interview", "studying for an exam on {subject}",
        "revising {subject} for my finals", "working through a textbook on {subject}",
        "building a small internal tool", "writing training material for my team",
        "reviewing old contest problems", "tutoring a student in {subject}",
        "teaching myself {subject}", "prototyping a feature at work",
        "putting together a practice set on {subject}", "trying to get better at {subject}",
        "grading homework on {subject}", "helping a friend with {subject}",
        "stuck on a side project", "refreshing my {subject}", "doing a kata",
        "writing a blog post about {subject}", "preparing a workshop on {subject}",
        "checking my own solution to a practice problem", "cramming for a quiz",
        "mentoring a junior colleague", "reading up on {subject} for a project",
        "debugging something for a client", "drafting a lecture on {subject}",
        "comparing approaches for a design doc", "practising for a coding round",
        "working on a research notebook", "onboarding onto a new codebase",
        "writing an internal wiki page on {subject}",
    ];
    /// Subjects people study or work on.
    Subject "subject" = [
        "algorithms", "discrete maths", "probability", "system design", "Rust",
        "dynamic programming", "graph theory", "linear algebra", "combinatorics",
        "concurrency", "number theory", "optimisation", "compilers", "databases",
        "distributed systems", "geometry", "statistics", "game theory",
        "operations research", "formal logic", "TypeScript", "Python performance",
        "numerical methods", "scheduling", "real analysis", "data pipelines",
    ];
    /// When something came up.
    When "when" = [
        "today", "this morning", "yesterday", "last night", "this week", "in a meeting",
        "during a code review", "in class", "at a meetup", "on a forum", "over lunch",
        "in a mock interview", "on a call", "in my reading group", "at standup",
    ];
    /// Who brought something up.
    Who "who" = [
        "my manager", "a colleague", "my professor", "a friend", "my study group",
        "an interviewer", "my mentor", "a teammate", "a reviewer", "my tutor",
        "a client", "my lab partner", "someone on my team", "a classmate",
    ];
    /// A larger piece of work the request is for.
    Project "project" = [
        "a side project", "our onboarding docs", "a course I'm writing",
        "an interview prep sheet", "a hackathon", "a research notebook", "my thesis",
        "a practice set for my team", "a coding club session", "an internal wiki page",
        "a tutorial series", "a study guide", "a client deliverable", "a lecture",
    ];
    /// Opening remarks: an optional greeting and one or two sentences of context.
    Opener "opener" = [
        "{context}", "{greeting} {context}", "{greeting} {context}", "{context} {context2}",
        "{greeting} {context} {context2}", "{greeting} {context2} {context}",
    ];
    /// A greeting with its punctuation.
    Greeting "greeting" = [
        "{greet},", "{greet}!", "{greet}.", "{greet} —", "{greet}!!", "{greet} :)",
        "{greet} {addressee},", "{greet} {addressee}!", "{greet} {addressee}.",
    ];
    /// Whom a greeting addresses.
    Addressee "addressee" = [
        "there", "team", "assistant", "friend", "folks", "all", "again", "AI", "helper", "mate",
    ];
    /// Sentences of context and purpose.
    Context "context" = [
        "I'm {purpose}.", "I'm {purpose} and could use a hand.",
        "I'm {purpose}, so accuracy matters more than speed.", "Context: I'm {purpose} for {project}.",
        "Background: {who} asked me about this {when}.",
        "This came up {when} while I was {purpose}.", "Quick one — I'm {purpose}.",
        "So I'm {purpose} and hit this {when}.", "As part of {project}, I need to get this right.",
        "{who_cap} gave me this {when} and I want to understand it properly.",
        "For {project} I'm {purpose}.", "Hope you're well; I'm {purpose}.",
        "Some context first: I'm {purpose}.", "Working on {project} {when}.",
        "I'm {purpose} and this one has me stuck.",
        "{who_cap} and I disagree about this one, and I'm {purpose} anyway.",
        "Long story short, I'm {purpose}.", "Quick context: {project}, due {due}.",
        "I got this from {who} {when}.", "I'm {purpose}; here's where I am.",
        "It's for {project}, due {due}.", "{who_cap} flagged this {when} and I'm {purpose}.",
        "Been {purpose} all week and this came up {when}.",
        "I'm {purpose} with {who} and we're stuck.",
        "Currently {purpose}, and {who} suggested I ask.", "Today's job: {purpose}.",
        "Right now I'm {purpose} for {project}.", "Yesterday {who} and I were {purpose}.",
        "While {purpose} I ran into this.", "Part of {project}: I'm {purpose}.",
        "Not urgent, but I'm {purpose}.", "Fair warning, I'm {purpose} and tired.",
        "Two things first: it's for {project}, and it's due {due}.",
        "My situation: {purpose}, deadline {due}.", "Here's my situation: I'm {purpose}.",
        "Trying something new — {purpose}.", "Honestly I'm {purpose} and lost on this one.",
        "Since {when} I've been {purpose}.", "{who_cap} recommended asking you; I'm {purpose}.",
        "Busy with {project} {when}, and this popped up.",
    ];
    /// A second sentence of context.
    Context2 "context2" = [
        "It's due {due}.", "{who_cap} is waiting on it.", "I've tried twice already.",
        "I'd rather understand it than memorise it.", "My first attempt was wrong.",
        "I only have {10-90} minutes.", "It counts for {5-40}% of the grade.",
        "I want to check my own answer against yours.", "Precision matters here.",
        "No need to be brief.", "This is the last piece of {project}.",
        "{who_cap} thinks it's easy; I don't.", "I'm fairly new to {subject}.",
        "It ties into {subject}, which I know a bit.",
    ];
    /// Deadlines.
    Due "due" = [
        "soon", "tomorrow", "on Friday", "next week", "by Monday", "tonight",
        "at the end of the month", "in two days", "this afternoon", "before the weekend",
    ];
    /// The same people, capitalised at the start of a sentence.
    WhoCap "who_cap" = [
        "My manager", "A colleague", "My professor", "A friend", "My study group",
        "An interviewer", "My mentor", "A teammate", "A reviewer", "My tutor", "A client",
    ];
    /// Lead-ins that introduce the task.
    Leadin "leadin" = [
        "{here} {det} {item}{leadin_tail}", "{here} {det} {item}{leadin_tail}",
        "{item_cap}{leadin_tail}", "Now the {item} itself{leadin_tail}",
        "OK, {det} {item}{leadin_tail}", "So, {det} {item}{leadin_tail}",
    ];
    /// Words that introduce something.
    Here "here" = [
        "Here's", "Here is", "Below is", "The following is", "This is", "Attached is",
        "What follows is", "Next up is", "Pasted below is", "Included below is",
    ];
    /// Determiners.
    Det "det" = ["the", "a", "my", "one", "this"];
    /// What the task is called.
    Item "item" = [
        "problem", "task", "question", "exercise", "challenge", "puzzle", "assignment",
        "item", "case", "spec", "prompt", "brief",
    ];
    /// The same, capitalised.
    ItemCap "item_cap" = [
        "Problem", "Task", "Question", "Exercise", "Challenge", "Puzzle", "Assignment",
        "Item", "Case", "Spec",
    ];
    /// Endings of a lead-in.
    LeadinTail "leadin_tail" = [
        ":", " I'm stuck on:", " I need solved:", " to work through:", " from my notes:",
        " I keep getting wrong:", " for you:", " I'd like help with:", " (verbatim):",
        " from the practice set:", " in full:", " as given:", " — see below:", ", copied here:",
    ];

    // ------------------------------------------------- asking for the reasoning
    /// How a request for the reasoning starts.
    ReasonLead "reason_lead" = [
        "Please", "Could you", "Can you", "I'd like you to", "Make sure you", "Be sure to",
        "I want you to", "Try to", "Kindly", "Remember to", "Don't forget to",
        "It would help if you could", "I need you to", "Would you", "You should",
        "I'd appreciate it if you would", "Ideally, you'd", "Do",
    ];
    /// Verbs of showing the reasoning.
    ReasonVerb "reason_verb" = [
        "walk me through", "lay out", "show", "write out", "spell out", "go through",
        "explain", "narrate", "document", "trace", "unpack", "set out", "detail",
        "break down", "present", "articulate", "make explicit", "talk through",
    ];
    /// What of the reasoning to show.
    ReasonObject "reason_object" = [
        "your reasoning", "every step", "the full derivation", "how you get to the answer",
        "your thought process", "each inference", "the logic behind each decision",
        "all the intermediate steps", "the chain of deductions", "your working",
        "the whole argument", "how you arrive at each step", "the reasoning behind your solution",
        "each step of the solution", "your line of thought", "the justification for every step",
        "the process rather than just the result", "what you consider at each point",
        "the steps in between", "how you rule things out",
    ];
    /// How thoroughly.
    ReasonQualifier "reason_qualifier" = [
        "in full", "without skipping anything", "in as much detail as you can",
        "from first principles", "before giving the answer", "step by step",
        "one step at a time", "carefully", "including approaches you ruled out",
        "and check each step", "as you would for a student", "in a numbered sequence",
        "before you commit to an answer", "exhaustively", "in plain language",
        "with every calculation shown", "so I can follow along", "so I can verify it",
        "in order", "at every stage", "thoroughly", "slowly",
    ];
    /// Ends of a sentence.
    Stop "stop" = [".", ".", ".", "!", " please.", ", thanks.", " if you can.", "."];
    /// Whole sentences asking for the reasoning.
    ReasonSentence "reason_sentence" = [
        "Think out loud as you go.", "Don't just give me the answer; I need to see how you got there.",
        "Reason it through before answering.", "I care more about the reasoning than the final result.",
        "Treat it like a worked solution in a textbook.", "Show all your work, like on an exam.",
        "I want the complete thought process, not a summary.",
        "Explain why each step follows from the previous one.",
        "Lay out your assumptions, then reason from them {reason_qualifier}.",
        "Take your time and think it through {reason_qualifier}.",
        "Walk through it slowly; I'm trying to learn the method.",
        "Reason {reason_qualifier} and make every step explicit.",
        "Be explicit about every deduction you make.", "Before the answer, give the full derivation.",
        "Think this through in detail before you conclude anything.",
        "I'd like to see your reasoning at each stage.", "Go deep: cover every intermediate step.",
        "Write it up as a detailed worked solution.", "Don't skip steps, even the obvious ones.",
        "Make your thinking visible, all of it.",
        "Explain it the way a patient teacher would, {reason_qualifier}.", "Include your scratch work.",
        "Show me how you reason about it from start to finish.",
        "The derivation matters to me as much as the answer.",
        "Work it out {reason_qualifier}, then state the result.",
        "Show the reasoning first and the answer last.",
        "Think step by step and write every step down.",
        "Reason about it as if you had to defend each step to a reviewer.",
    ];
    /// The same request, written casually.
    ReasonCasual "reason_casual" = [
        "can u show how u got there", "pls show steps", "explain ur thinking",
        "show working pls", "walk me thru it", "how did you get that? show the steps",
        "need the steps not just the answer", "explain it step by step pls",
        "show ur reasoning", "and explain why", "step by step please",
        "explain how you got it", "with the working shown", "show all the steps lol",
    ];

    // ------------------------------------------------------ format requirements
    /// Requirements on the form of the answer.
    Format "format" = [
        "Put the final answer on its own line, starting with \"{answer_label}\".",
        "Finish with a {count_word}-sentence summary.", "Use {structure} for each part.",
        "Return JSON with the keys \"{json_key}\" and \"{json_key2}\".",
        "Wrap the final result in {wrapper}.", "Number your steps.",
        "Keep the final answer under {10-120} words.", "Include a complexity analysis at the end.",
        "Add {count_plural} test cases at the end.", "List your assumptions first.",
        "State any edge cases explicitly.", "End by checking the answer against the original conditions.",
        "Use LaTeX for the maths.", "Format everything as Markdown.",
        "Separate the reasoning from the answer with a horizontal rule.",
        "Label each step as Step 1, Step 2, and so on.",
        "Put the reasoning inside <{tag_reason}> tags and the answer inside <{tag_answer}> tags.",
        "Write it for someone who knows {level}.", "Give a short intuition first, then the rigorous version.",
        "Mention one alternative approach and why you didn't pick it.",
        "Keep the code in a single block with comments.", "Give the final answer in bold.",
        "Use a table where it helps.", "Start with a one-line restatement of the {item}.",
        "Finish with the answer alone on the last line.", "Cite the rule or theorem used at each step.",
        "Write the solution as {structure}.", "Keep each step to {count_plural} sentences at most.",
        "Include the full code, not just a sketch.", "Show the intermediate values in a table.",
    ];
    /// Labels that introduce the answer.
    AnswerLabel "answer_label" = [
        "Answer:", "Final answer:", "Result:", "ANSWER:", "Conclusion:", "=>", "Solution:",
        "Final:", "Therefore:", "Output:",
    ];
    /// Small plural counts in words.
    CountPlural "count_plural" = ["two", "three", "a few", "several", "five", "some", "four"];
    /// Small counts in words.
    CountWord "count_word" = ["one", "two", "three", "a few", "several", "five"];
    /// Structures of an answer.
    Structure "structure" = [
        "headings", "numbered sections", "bullet points", "short paragraphs",
        "a numbered list", "clear sections", "a checklist",
    ];
    /// Keys of a JSON answer.
    JsonKey "json_key" = [
        "reasoning", "steps", "explanation", "analysis", "work", "rationale", "thoughts",
        "derivation",
    ];
    /// Keys of a JSON answer's result.
    JsonKey2 "json_key2" = ["answer", "final", "result", "solution", "output", "verdict"];
    /// Ways to mark the result.
    Wrapper "wrapper" = [
        "\\boxed{}", "<answer></answer> tags", "double asterisks", "a code block",
        "square brackets", "a blockquote", "triple backticks",
    ];
    /// Tags for the reasoning.
    TagReason "tag_reason" = ["thinking", "reasoning", "scratchpad", "analysis", "work", "thought"];
    /// Tags for the answer.
    TagAnswer "tag_answer" = ["answer", "final", "result", "output", "solution"];
    /// What the reader knows.
    Level "level" = [
        "basic programming", "high-school maths", "undergraduate maths",
        "nothing about the topic", "some statistics", "Python but not much theory",
    ];

    /// Why a format is wanted (appended to a requirement).
    FormatWhy "format_why" = [
        "so I can paste it into {destination}", "so it renders in {editor}",
        "because {who} will grade it", "so I can compare it with {comparison}",
        "for consistency with {project}", "so {who} can follow it", "as {who} asked",
        "because it goes into {project}", "so I can check it against {comparison}",
        "since I'll share it with {who}", "to keep {destination} readable",
        "since it ends up in {destination}", "the way {who} likes it",
        "so I can diff it against {comparison}", "because I read it in {editor}",
    ];
    /// When the answer will be used.
    Later "later" = [
        "later", "tomorrow", "tonight", "this week", "afterwards", "next", "after lunch",
        "on Monday", "before the review", "in the morning", "over the weekend", "right after",
        "at some point", "soon",
    ];
    /// Where an answer ends up.
    Destination "destination" = [
        "my notes", "my notebook", "the team doc", "our wiki", "the report", "a slide deck",
        "my thesis draft", "the README", "a ticket", "the handout", "my flashcards", "the PR",
    ];
    /// What an answer is compared with.
    Comparison "comparison" = [
        "my attempt", "my own answer", "the textbook", "the answer key", "last year's solution",
        "my draft", "a classmate's answer", "the reference solution", "my spreadsheet",
    ];
    /// Where an answer is read.
    Editor "editor" = [
        "my editor", "Obsidian", "Notion", "VS Code", "Jupyter", "the terminal", "our docs site",
        "Slack", "GitHub",
    ];
    /// How a format requirement is introduced.
    FormatLead "format_lead" = [
        "", "", "", "Please ", "Also, ", "Oh, and ", "Finally, ", "Formatting: ", "Note: ",
        "Important: ", "One more thing: ", "If possible, ", "Ideally, ", "As for format: ",
        "PS: ", "And ", "Lastly, ", "Style-wise, ",
    ];

    // ---------------------------------------------------------------- closers
    /// Closing remarks.
    Closer "closer" = [
        "Thanks!", "Thank you.", "Thanks in advance.", "Appreciate it.", "Cheers.",
        "Much appreciated!", "Thanks a lot.", "ty", "thx", "Many thanks.", "Thank you so much!",
        "Grateful for the help.", "That's all, thanks.", "Looking forward to it.",
        "Take your time.", "(This is important to me.)", "No rush.", "Cheers!",
        "Thanks, you're a lifesaver.", "Let me know if anything is unclear.",
        "Happy to clarify if needed.", "Thanks for your patience.",
    ];
    /// Closers with a sign-off.
    SignedCloser "signed_closer" = [
        "{closer}", "{closer}", "{closer} — {name}", "{closer}\n{name}", "{closer} Best, {name}",
        "{closer} -{name}", "{closer} {sign_off}", "{sign_off}",
    ];
    /// Sign-offs.
    SignOff "sign_off" = [
        "Best regards.", "Kind regards.", "All the best.", "Speak soon.", "Have a good one.",
        "Cheers, {name}.", "Talk later.", "Regards, {name}.", "Warmly.", "Take care.",
    ];

    // ------------------------------------------------------- layouts and labels
    /// Labels of the task section.
    LabelTask "label_task" = [
        "Task", "Problem", "Question", "Exercise", "Assignment", "Challenge", "Input",
        "Prompt", "Item", "Problem statement", "The task", "Details",
    ];
    /// Labels of the instructions section.
    LabelRules "label_rules" = [
        "Requirements", "Instructions", "Notes", "What I need", "Guidelines", "How to answer",
        "Constraints on the answer", "Output format", "Expectations", "Please", "Rules",
    ];
    /// XML-ish tags around the task.
    TagTask "tag_task" = ["problem", "task", "question", "input", "query", "exercise"];
    /// XML-ish tags around the instructions.
    TagRules "tag_rules" = ["instructions", "requirements", "format", "rules", "guidelines"];

    // ---------------------------------------------------------- system prompts
    /// Roles a system prompt gives the model.
    Role "role" = [
        "assistant", "tutor", "software engineer", "mathematician", "teaching assistant",
        "problem solver", "reasoning assistant", "senior developer", "competition coach",
        "analyst", "research assistant", "expert programmer", "logic instructor",
        "engineering mentor", "maths olympiad trainer", "technical writer",
    ];
    /// Adjectives of a role.
    RoleAdj "role_adj" = [
        "meticulous", "patient", "careful", "rigorous", "thorough", "helpful", "precise",
        "methodical", "knowledgeable", "expert", "friendly", "diligent", "world-class",
        "seasoned", "pragmatic",
    ];
    /// Habits of a role.
    Habit "habit" = [
        "explains every step", "never skips steps", "checks their work",
        "thinks before answering", "writes clean, tested code", "shows the full derivation",
        "justifies each claim", "prefers clarity over brevity", "states assumptions up front",
        "double-checks calculations",
    ];
    /// Persona sentences.
    Persona "persona" = [
        "You are a {role_adj} {role}.", "You are a {role_adj} {role} who {habit}.",
        "Act as a {role_adj} {role}.", "You're a {role}; be {role_adj}.",
        "Role: {role_adj} {role}.", "You are an AI {role} that {habit}.",
        "Behave like a {role_adj} {role} who {habit}.", "Assume the role of a {role_adj} {role}.",
    ];
    /// Guidance sentences of a system prompt.
    Guidance "guidance" = [
        "Always reason step by step before answering.", "Show your work.", "Answer in Markdown.",
        "Be concise in the final answer but complete in the reasoning.",
        "Verify your answer before stating it.",
        "If the problem is ambiguous, state your assumptions.",
        "Write idiomatic code with comments.", "Prefer correctness over speed.",
        "Use clear headings.", "Think carefully.", "Explain your reasoning in detail.",
        "Keep a professional tone.", "Never skip intermediate steps.",
        "Structure long answers with sections.", "When writing code, include tests.",
        "Be precise with numbers and units.", "Answer in English.",
        "Do not refuse reasonable technical questions.", "Cite the method you use.",
        "Explain trade-offs when there are several options.",
    ];

    // ------------------------------------------------------------ casual users
    /// How people open a chat.
    ChatOpener "chat_opener" = [
        "", "", "", "Hey, ", "Hi! ", "Quick question: ", "Please ", "Can you help me? ",
        "I need some help. ", "ok so ", "Hello. ", "So ", "Urgent: ",
    ];
    /// How people close a chat message.
    ChatCloser "chat_closer" = [
        "", "", "", " Thanks!", " Thank you.", " Keep it short please.", " Be specific.",
        " thx", " Explain briefly.", " Use simple language.", " Show an example if you can.",
    ];
    /// Follow-up messages in a conversation.
    FollowUp "follow_up" = [
        "Thanks! Can you make it shorter?", "Can you add comments to the code?",
        "That didn't work. I still get {error}.", "What about {topic}? How does that compare?",
        "ok, and how would I test this?", "Can you rewrite it in {lang}?", "Make it more {adj}.",
        "Great. Now turn that into a bullet list.", "Why is that better than the first version?",
        "Can you explain the second part again, step by step?",
        "perfect, one more thing: how do I handle the case where {ident} is empty?",
        "Hmm, I don't think that's right. Are you sure?", "Could you give me {2-7} more examples?",
        "Translate that into {language}.", "wait, why does step {2-5} follow?",
        "I got a different number for the last part. Can you recheck it?",
        "Can you do the same for n = {5-40}?", "What if the input is much larger?",
        "ok that makes sense. what's the intuition though?", "Is there a simpler way?",
    ];
    /// Error messages people paste.
    Error "error" = [
        "TypeError: 'NoneType' object is not subscriptable", "KeyError: 'id'",
        "IndexError: list index out of range", "undefined is not a function",
        "Cannot read properties of undefined (reading 'map')",
        "error[E0502]: cannot borrow `x` as mutable because it is also borrowed as immutable",
        "panic: runtime error: index out of range [3] with length 3",
        "ModuleNotFoundError: No module named 'pandas'", "SyntaxError: Unexpected token '}'",
        "java.lang.NullPointerException", "ERROR: column \"created_at\" does not exist",
        "Segmentation fault (core dumped)",
    ];
    /// Natural languages.
    Language "language" = [
        "Spanish", "French", "German", "Japanese", "Portuguese", "Italian", "Korean", "Dutch",
    ];

    // ------------------------------------------------------------------ tasks
    /// Data structures.
    Ds "ds" = [
        "priority queue", "LRU cache", "interval tree", "trie", "disjoint-set forest",
        "segment tree", "rate limiter", "skip list", "bloom filter", "Fenwick tree",
        "persistent stack", "ring buffer", "order-statistic tree", "LFU cache",
        "consistent-hash ring", "sparse table", "min-max heap", "suffix array",
    ];
    /// Verbs of building code.
    Build "build" = [
        "Implement", "Write", "Build", "Code up", "Design and implement", "Create", "Develop",
        "Put together",
    ];
    /// Inserting operations.
    OpAdd "op_add" = ["insert", "push", "add", "put", "append", "enqueue"];
    /// Removing operations.
    OpDel "op_del" = ["delete", "pop", "remove", "evict", "dequeue", "erase"];
    /// Querying operations.
    OpQuery "op_query" = [
        "query", "peek", "range sum", "find", "rank", "k-th smallest", "range minimum",
        "contains",
    ];
    /// Complexity bounds.
    Complexity "complexity" = [
        "O(log n)", "amortised O(1)", "O(sqrt n)", "O(log^2 n)", "worst-case O(1)",
        "expected O(1)",
    ];
    /// Programming languages of tasks.
    TaskLang "task_lang" = [
        "Python", "Python", "Rust", "Go", "TypeScript", "Java", "C++", "JavaScript", "Kotlin",
        "C#",
    ];
    /// Things to compute over an array.
    ArrayTarget "array_target" = [
        "the length of the longest increasing subsequence",
        "the number of subarrays whose sum is divisible by {2-50}",
        "the minimum number of swaps needed to sort it",
        "the maximum sum of a subset with no two adjacent elements",
        "the {2-90}-th smallest pairwise distance",
        "every pair that sums to {10-500}",
        "the longest window containing at most {2-9} distinct values",
        "the number of inversions", "the median after each insertion",
        "the smallest range covering one element from each of {2-6} groups",
        "the maximum product of a contiguous subarray",
        "the number of ways to split it into {2-5} parts with equal sums",
    ];
    /// Questions about a graph.
    GraphTarget "graph_target" = [
        "the shortest path from node 1 to every other node",
        "the number of connected components after each of {3-40} edge deletions",
        "whether it has a cycle, and one cycle if it does", "all bridges",
        "a topological order with ties broken by smallest label",
        "the minimum spanning tree's weight", "the maximum flow from node 1 to node {5-90}",
        "the strongly connected components", "the diameter", "a maximum matching",
    ];
    /// Kinds of graphs.
    GraphKind "graph_kind" = [
        "directed", "undirected", "weighted directed", "weighted undirected", "bipartite",
        "sparse directed",
    ];
    /// What a function should do.
    FuncSpec "func_spec" = [
        "merges overlapping intervals", "parses ISO-8601 durations into seconds",
        "returns the k most frequent words", "validates a Sudoku board",
        "computes a rolling median over a stream", "deduplicates events within a time window",
        "finds the longest palindromic substring", "evaluates an arithmetic expression with precedence",
        "groups anagrams", "flattens an arbitrarily nested list",
        "computes edit distance between two strings", "detects a cycle in a linked list",
        "serialises and deserialises a binary tree", "schedules meetings into the fewest rooms",
        "balances parentheses with the fewest insertions", "converts Roman numerals both ways",
    ];
    /// Symptoms of a bug.
    Symptom "symptom" = [
        "returns the wrong result for some inputs", "hangs on large inputs",
        "crashes on an empty list", "is off by one at the boundaries",
        "gives different answers on each run", "leaks memory over time",
        "fails the last test case", "is far too slow for n = 10^{5-7}",
    ];
    /// Systems to design.
    System "system" = [
        "URL shortener", "chat service", "job scheduler", "metrics pipeline", "feature-flag service",
        "payment ledger", "news feed", "rate-limited API gateway", "search autocomplete",
        "distributed cache", "file sync service", "ride-matching service",
    ];
    /// Tool sets of agentic tasks.
    Tools "tools" = [
        "search(query), open(url) and summarize(text)",
        "read_file(path), write_file(path, content) and run(cmd)",
        "move(dx, dy), scan(), pick(item) and report(status)",
        "sql(query), chart(spec) and email(to, body)",
        "git(cmd), test(path) and deploy(env)",
        "get_weather(city), book_flight(from, to, date) and book_hotel(city, nights)",
        "http_get(url), parse_html(doc) and save(record)",
        "list_tickets(filter), comment(id, text) and close(id)",
        "kubectl(args), logs(pod) and rollback(deployment)",
        "calendar_find(slot), calendar_book(slot, people) and notify(person, text)",
    ];
    /// Goals of agentic tasks.
    Goal "goal" = [
        "find the three cheapest flights to {city} next week and book the earliest",
        "migrate a {5-80}-table database to a new schema without downtime",
        "triage {5-60} failing CI jobs and open issues only for real bugs",
        "research {topic} and write a one-page brief with sources",
        "reconcile {20-900} invoices against bank statements",
        "set up monitoring for a {system} and alert on error spikes",
        "refactor a repository of {20-400} files to a new logging library",
        "clean a {1000-90000}-row CSV of customer records and load it into the warehouse",
        "find why p99 latency doubled after the last deploy and fix it",
        "schedule {3-12} interviews across {2-5} time zones with no conflicts",
        "collect prices for {5-50} products from {2-6} shops and flag outliers",
        "clear a {10-40}x{10-40} warehouse grid of misplaced items with {2-6} robots",
    ];
    /// Cities.
    City "city" = [
        "Lisbon", "Osaka", "Denver", "Nairobi", "Krakow", "Montreal", "Singapore", "Lima",
        "Tallinn", "Auckland",
    ];
    /// Topics of explanations and research.
    Topic "topic" = [
        "compound interest", "photosynthesis", "TCP congestion control", "vector databases",
        "supply and demand", "public key cryptography", "garbage collection", "plate tectonics",
        "Bayesian statistics", "database indexing", "OAuth flows", "container orchestration",
        "the immune system", "index funds", "CRISPR", "the placebo effect", "inflation",
    ];
    /// Probability events.
    Event "event" = [
        "exactly {2-5} are red", "at least one is blue", "the first two have the same colour",
        "red and blue alternate", "the last one drawn is red", "more are red than blue",
    ];
    /// Quantities of a triangle.
    TriangleQ "triangle_q" = [
        "area", "inradius", "circumradius", "largest angle", "shortest altitude",
        "length of the median to the longest side",
    ];
    /// Constraints of a seating problem.
    Seating "seating" = [
        "two particular people refuse to sit together", "couples must sit together",
        "no two people of the same team sit next to each other", "the host sits at a fixed seat",
        "three particular people must sit consecutively",
    ];
    /// Projects of planning tasks.
    PlanProject "plan_project" = [
        "product launch", "office move", "data-centre migration", "conference",
        "clinical trial pilot", "marketing campaign", "hardware rollout", "kitchen renovation",
    ];
    /// Names in logic puzzles.
    Name "name" = [
        "Ana", "Ben", "Chloe", "Dev", "Emil", "Farah", "Goran", "Hana", "Ivo", "Jun", "Kira",
        "Luis",
    ];
    /// Attributes in logic puzzles.
    Attribute "attribute" = [
        "pet", "car", "drink", "instrument", "job", "sport", "hometown", "favourite colour",
    ];
    /// Extras for a function-writing task.
    FuncExtra "func_extra" = [
        "Handle empty input.", "It must run in O(n log n).", "Include type hints.",
        "No external libraries.", "It will be called millions of times, so keep allocations down.",
        "Inputs can be adversarial.", "Write it so it streams instead of loading everything.",
    ];
    /// The two ends of a game.
    WinLose "win_lose" = ["wins", "loses"];
    /// Countries.
    Country "country" = ["Australia", "Canada", "Kenya", "Peru", "Norway", "Vietnam", "Chile", "Ghana"];
    /// Adjectives of ordinary requests.
    Adj "adj" = [
        "quick", "detailed", "simple", "robust", "friendly", "formal", "concise", "clear",
        "practical", "reliable", "efficient", "careful", "modern", "readable", "thorough",
    ];
    /// Programming languages people name.
    Lang "lang" = [
        "Python", "JavaScript", "TypeScript", "Rust", "Go", "Java", "C#", "SQL", "Bash", "C++",
        "Kotlin", "Ruby", "PHP",
    ];
    /// Identifiers.
    Ident "ident" = [
        "items", "user", "orders", "total", "config", "result", "data", "payload", "records",
        "cache", "index", "buffer", "queue", "scores", "rows", "path", "name", "session",
    ];
}

/// A wording pool set: all of every pool, or a perturbation's subset.
#[derive(Debug, Clone)]
pub(crate) struct Pools {
    lists: Vec<Vec<&'static str>>,
}

impl Pools {
    /// The pools of perturbation `perturb`: all entries for 0, otherwise each
    /// pool keeps a random share in [`POOL_KEEP`] of its entries (at least
    /// three, or all of a smaller pool).
    pub(crate) fn new(perturb: u64) -> Self {
        let lists = ALL
            .iter()
            .map(|(name, items)| {
                if perturb == 0 || items.len() <= 3 {
                    return items.to_vec();
                }
                let mut rng = rng_of(perturb, name_hash(name) ^ 0x0_9001);
                let keep = rng.random_range(POOL_KEEP.0..=POOL_KEEP.1);
                let mut kept: Vec<&'static str> = Vec::with_capacity(items.len());
                let mut dropped = Vec::new();
                for item in items.iter() {
                    if rng.random_bool(keep) {
                        kept.push(item);
                    } else {
                        dropped.push(*item);
                    }
                }
                for item in dropped {
                    if kept.len() >= 3 {
                        break;
                    }
                    kept.push(item);
                }
                kept
            })
            .collect();
        Self { lists }
    }

    /// The entries of pool `p`.
    pub(crate) fn get(&self, p: P) -> &[&'static str] {
        self.lists.get(p as usize).map_or(&[], Vec::as_slice)
    }

    /// One entry of pool `p`, unfilled.
    pub(crate) fn pick<R: Rng + ?Sized>(&self, rng: &mut R, p: P) -> &'static str {
        super::random::pick(rng, self.get(p))
    }

    /// Appends one entry of `p` with its slots filled.
    pub(crate) fn fill_from<R: Rng + ?Sized>(&self, rng: &mut R, p: P, out: &mut String) {
        let frame = self.pick(rng, p);
        self.fill(rng, frame, out, 0);
    }

    /// Appends `frame` with its slots filled.
    pub(crate) fn fill<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        frame: &str,
        out: &mut String,
        depth: u8,
    ) {
        fill_slots(frame, out, |slot, out| {
            if let Some((lo, hi)) = range_slot(slot) {
                let n = rng.random_range(lo..=hi);
                out.push_str(&n.to_string());
            } else if let (Some(p), true) = (P::of_name(slot), depth < 4) {
                let inner = self.pick(rng, p);
                self.fill(rng, inner, out, depth + 1);
            } else {
                out.push('{');
                out.push_str(slot);
                out.push('}');
            }
        });
    }
}

/// `a-b` with `a ≤ b`, both integers.
fn range_slot(slot: &str) -> Option<(u64, u64)> {
    let (a, b) = slot.split_once('-')?;
    let (a, b) = (a.parse::<u64>().ok()?, b.parse::<u64>().ok()?);
    (a <= b).then_some((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_names_a_pool_or_a_range() {
        for (name, items) in ALL {
            for item in *items {
                let mut rest = *item;
                while let Some(open) = rest.find('{') {
                    let close = rest[open..].find('}').expect("closed slot") + open;
                    let slot = &rest[open + 1..close];
                    assert!(
                        slot.is_empty() || P::of_name(slot).is_some() || range_slot(slot).is_some(),
                        "{name}: unknown slot {{{slot}}} in {item:?}"
                    );
                    rest = &rest[close + 1..];
                }
            }
        }
    }

    #[test]
    fn filling_leaves_no_slots_and_perturbed_pools_are_subsets() {
        let full = Pools::new(0);
        let mut rng = rng_of(1, 1);
        for _ in 0..500 {
            let mut s = String::new();
            full.fill_from(&mut rng, P::Opener, &mut s);
            full.fill_from(&mut rng, P::Format, &mut s);
            full.fill_from(&mut rng, P::Goal, &mut s);
            assert!(!s.contains('{') || s.contains("\\boxed{}"), "{s}");
        }
        let a = Pools::new(7);
        assert_eq!(a.lists, Pools::new(7).lists, "deterministic");
        let mut smaller = 0;
        for (i, (name, items)) in ALL.iter().enumerate() {
            let sub = &a.lists[i];
            assert!(sub.len() >= 3.min(items.len()), "{name}");
            assert!(sub.iter().all(|s| items.contains(s)), "{name}");
            smaller += usize::from(sub.len() < items.len());
        }
        assert!(
            smaller * 2 > ALL.len(),
            "most pools lose entries: {smaller}"
        );
        assert_ne!(a.lists, Pools::new(8).lists);
    }
}
