use std::path::Path;
use std::process::ExitCode;

use distill_guard::config::Config;

pub(crate) fn run(file: &Path) -> ExitCode {
    match Config::load(file) {
        Ok(_) => {
            println!("{}: ok", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprint!("{}: {e}", file.display());
            ExitCode::from(1)
        }
    }
}
