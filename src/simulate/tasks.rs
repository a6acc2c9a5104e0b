//! Capability tasks: the coding, agentic tool-use, maths and long-horizon
//! reasoning problems that extraction wants, and that students, power users
//! and researchers also ask. Each family has several phrasings with varying
//! details, and many tasks carry context (code, a spec, data).

use rand::Rng;

use super::pools::{Pools, P};
use super::prose::{code, fence, prose, CODE_LANGS};
use super::random::{pick, weighted};

/// What a task exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Focus {
    Coding,
    Agentic,
    Maths,
    LongHorizon,
}

impl Focus {
    /// A focus drawn with weights `[coding, agentic, maths, long-horizon]`.
    pub(crate) fn draw<R: Rng + ?Sized>(rng: &mut R, weights: &[f64; 4]) -> Self {
        match weighted(rng, weights) {
            0 => Focus::Coding,
            1 => Focus::Agentic,
            2 => Focus::Maths,
            _ => Focus::LongHorizon,
        }
    }
}

/// Appends a task of `focus`.
pub(crate) fn task<R: Rng + ?Sized>(rng: &mut R, pools: &Pools, focus: Focus, out: &mut String) {
    match focus {
        Focus::Coding => coding(rng, pools, out),
        Focus::Agentic => agentic(rng, pools, out),
        Focus::Maths => maths(rng, pools, out),
        Focus::LongHorizon => long_horizon(rng, pools, out),
    }
}

fn f<R: Rng + ?Sized>(rng: &mut R, pools: &Pools, frame: &str, out: &mut String) {
    pools.fill(rng, frame, out, 0);
}

/// Fills one of `frames`.
fn fp<R: Rng + ?Sized>(rng: &mut R, pools: &Pools, frames: &[&str], out: &mut String) {
    let frame = pick(rng, frames);
    pools.fill(rng, frame, out, 0);
}

fn coding<R: Rng + ?Sized>(rng: &mut R, pools: &Pools, out: &mut String) {
    let lang = pools.pick(rng, P::TaskLang);
    match rng.random_range(0..9) {
        0 => {
            f(rng, pools, "{build} a {ds} in ", out);
            out.push_str(lang);
            f(
                rng,
                pools,
                " that supports {op_add}, {op_del} and {op_query} in {complexity} time. Up to {1000-1000000} operations, values up to 10^{5-18}.",
                out,
            );
        }
        1 => fp(rng, pools, &[
                    "Given an array of {5-200000} integers, compute {array_target}.",
                    "You are given n ≤ {100-500000} integers. Find {array_target}.",
                    "For a list of {10-90000} numbers, return {array_target}.",
                    "Input: an integer array (length up to {1000-200000}). Output: {array_target}.",
                ], out),
        2 => fp(rng, pools, &[
                    "A {graph_kind} graph has {5-100000} nodes and {10-300000} edges. Find {graph_target}.",
                    "Given a {graph_kind} graph (n ≤ {100-100000}, m ≤ {100-300000}), compute {graph_target}.",
                    "Consider a {graph_kind} graph with {5-5000} vertices. Describe and implement an algorithm for {graph_target}.",
                ], out),
        3 | 4 => {
            let lang = pick(rng, CODE_LANGS);
            out.push_str(pick(rng, &["The following ", "This ", "Here is a ", "My ", "Our team's "]));
            out.push_str(lang);
            f(
                rng,
                pools,
                " function, which {func_spec}, {symptom}. Find the bug and fix it.\n\n```",
                out,
            );
            out.push_str(fence(lang));
            out.push('\n');
            code(rng, lang, out);
            out.push_str("\n```");
        }
        5 => {
            f(rng, pools, "Write a ", out);
            out.push_str(lang);
            f(
                rng,
                pools,
                " function that {func_spec}. {func_extra}",
                out,
            );
        }
        6 => f(
            rng,
            pools,
            "Design a {system} that handles {1000-500000} requests per second. Give the data model, the APIs, how it scales and how it fails, then implement the core component.",
            out,
        ),
        7 => {
            let lang = pick(rng, CODE_LANGS);
            f(
                rng,
                pools,
                "This code times out for n = 10^{5-7}. Make it asymptotically faster and explain why the new version is correct.\n\n```",
                out,
            );
            out.push_str(fence(lang));
            out.push('\n');
            code(rng, lang, out);
            out.push_str("\n```");
        }
        _ => f(
            rng,
            pools,
            "Write a SQL query over orders(id, customer_id, total, created_at) and customers(id, region, signup_date) that returns, per region, the {2-10} customers with the highest spend in the last {7-90} days, with ties broken by signup date.",
            out,
        ),
    }
    if rng.random_bool(0.25) {
        out.push_str("\n\nBackground: ");
        let words = rng.random_range(40..220);
        prose(rng, words, out);
    }
}

fn agentic<R: Rng + ?Sized>(rng: &mut R, pools: &Pools, out: &mut String) {
    fp(rng, pools, &[
            "You are an agent with the tools {tools}. Goal: {goal}. Produce the exact sequence of tool calls with their arguments, and justify each one.",
            "Plan how an autonomous agent would {goal} using only {tools}. For each step give the call, the observation you expect and what the agent does next.",
            "Tools available: {tools}.\nGoal: {goal}.\nWrite the full trajectory (thought, action, observation) until the goal is met, including how you recover from a failed call.",
            "Act as a planner for an agent that can call {tools}. The objective is to {goal}. Break it into sub-goals, then list every tool call in order.",
            "Design the control loop of an agent that must {goal}. It can only call {tools}. Show the plan, the calls, and the checks after each call.",
            "A robot starts at ({0-9}, {0-9}) on a {10-40}x{10-40} grid with {3-30} obstacles. It must visit every shelf marked S and return. Plan the sequence of tool calls (move, scan, pick, report) and justify each step.",
        ], out);
    if rng.random_bool(0.3) {
        out.push_str(pick(
            rng,
            &[
                "\n\nConstraints: at most 25 calls; a call can fail and must be retried at most twice.",
                "\n\nAssume every call costs money, so avoid redundant ones.",
                "\n\nThe environment is partially observable; state what you assume at each step.",
                "\n\nSome tools return stale data about 10% of the time.",
            ],
        ));
    }
}

fn maths<R: Rng + ?Sized>(rng: &mut R, pools: &Pools, out: &mut String) {
    fp(rng, pools, &[
            "Tank A fills in {2-60} hours and tank B drains in {2-60} hours. Starting with {100-5000} litres in a tank of twice that capacity, when is it full if both run and a third pipe adds {5-200} litres per hour?",
            "Prove or disprove: for every integer n > {1-20}, the number n^{2-6} + {1-30}n is divisible by {2-12}.",
            "Find all integers x with 0 ≤ x < {20-400} such that x^2 ≡ {1-90} (mod {20-400}).",
            "{2-6} balls are drawn without replacement from an urn with {3-20} red and {3-20} blue balls. What is the probability that {event}?",
            "{2-6} balls are drawn with replacement from an urn with {3-20} red and {3-20} blue balls. What is the probability that {event}?",
            "In how many ways can {5-12} people be seated at a round table if {seating}?",
            "A triangle has sides {3-40}, {3-40} and {3-40} (if they form one). Find its {triangle_q}.",
            "Evaluate the sum of 1/(k(k+{1-9})) for k from 1 to {10-1000}, exactly.",
            "Find the minimum of f(x) = {2-9}x^4 - {2-30}x^2 + {1-20}x on the interval [-{1-5}, {1-5}].",
            "A sequence has a_1 = {1-9} and a_(n+1) = {2-7}a_n + {1-15}. Find a closed form and the value of a_{10-30} modulo {97-1009}.",
            "How many lattice paths go from (0,0) to ({3-12},{3-12}) using unit steps right and up, never crossing above the line y = x + {0-3}?",
            "Show that among any {5-20} integers there are two whose difference is divisible by {4-19}, and decide whether {4-19} integers suffice.",
            "A fair die is rolled until the sum exceeds {6-40}. What is the expected number of rolls?",
            "Solve the system: {2-9}x + {1-9}y - z = {1-40}, x - {1-9}y + {2-9}z = {1-40}, {1-9}x + y + z = {1-40}.",
        ], out);
}

fn long_horizon<R: Rng + ?Sized>(rng: &mut R, pools: &Pools, out: &mut String) {
    match rng.random_range(0..6) {
        0 => {
            let n = rng.random_range(5..12);
            out.push_str(&format!("{n} tasks with durations "));
            for i in 0..n {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&rng.random_range(1..20).to_string());
            }
            out.push_str(" hours and the dependencies ");
            for i in 0..rng.random_range(3..n) {
                if i > 0 {
                    out.push_str(", ");
                }
                let a = rng.random_range(1..n);
                let b = rng.random_range(a + 1..=n);
                out.push_str(&format!("T{a} before T{b}"));
            }
            f(
                rng,
                pools,
                " must run on {2-4} machines. Find a schedule that minimises the finishing time and prove it is optimal.",
                out,
            );
        }
        1 => {
            let people = rng.random_range(3..6);
            out.push_str(&format!("{people} friends, "));
            for i in 0..people {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(pools.pick(rng, P::Name));
            }
            f(rng, pools, ", each have a different {attribute} and {attribute}. Clues:\n", out);
            for i in 1..=rng.random_range(4..9) {
                out.push_str(&format!("{i}. "));
                fp(rng, pools, &[
                            "{name} is not next to {name}.",
                            "The person with the {attribute} sits left of {name}.",
                            "{name} lives {2-4} houses from {name}.",
                            "Exactly one of {name} and {name} tells the truth.",
                            "The first house does not belong to {name}.",
                        ], out);
                out.push('\n');
            }
            out.push_str("Who has what? Deduce it from the clues.");
        }
        2 => f(
            rng,
            pools,
            "Two players alternately remove 1 to {2-9} stones from a pile of {20-500}; the player who takes the last stone {win_lose}. Who wins with perfect play, and what is the strategy from every position?",
            out,
        ),
        3 => f(
            rng,
            pools,
            "Plan a {4-30}-week {plan_project} with a budget of ${10000-900000}, {3-12} people and these constraints: no more than {2-4} workstreams at once, a review gate every {2-6} weeks, and a hard deadline. Justify every trade-off and identify the critical path.",
            out,
        ),
        4 => f(
            rng,
            pools,
            "You have a {3-13}-litre jug, a {3-13}-litre jug and unlimited water. How do you measure exactly {1-12} litres in the fewest moves? If it is impossible, prove it.",
            out,
        ),
        _ => f(
            rng,
            pools,
            "A startup has {3-20} engineers and {2-12} months to ship {3-9} features with different values and effort estimates. Plan the roadmap month by month, re-planning after a {1-3}-month slip in the largest feature.",
            out,
        ),
    }
}

/// A short ordinary question a campaign mixes in (small cap, short answer).
pub(crate) fn short_task<R: Rng + ?Sized>(rng: &mut R, pools: &Pools, out: &mut String) {
    fp(
        rng,
        pools,
        &[
            "What does `sorted()` return for an empty list in Python?",
            "Convert {0-120} degrees Fahrenheit to Celsius.",
            "Name the time complexity of binary search over {10-100000} items.",
            "What is {12-99} times {12-99}?",
            "Give a synonym for \"{adj}\".",
            "Is {101-9999} prime?",
            "What's the capital of {country}?",
            "Define {topic} in one sentence.",
            "How many bytes are in {2-64} kibibytes?",
        ],
        out,
    );
}
