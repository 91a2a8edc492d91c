//! The `temper-loadtest` binary.

use std::process::ExitCode;

fn main() -> ExitCode {
    match temper_loadtest::main_with_args(std::env::args_os().skip(1)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<clap::Error>() {
            Some(usage) => usage.exit(),
            None => {
                eprintln!("temper-loadtest: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}
