/// Response body of the detect stage: the inner service's body unchanged, or a
/// guard-generated error body (401, 400, 413 from request preparation).
pub type DetectBody<B> = crate::body::GuardBody<B>;
