//! Entry point: reads the arguments, then the configuration, sets up logging, runs, and exits
//! with SPEC's code.

use std::io::Write;
use std::process::ExitCode;

use jobherd::cli::{self, Command};
use jobherd::config::{LogFormat, Mode};
use jobherd::exit::Exit;

fn main() -> ExitCode {
    // Arguments come first: `--help` must work whatever the variables say.
    let text = match cli::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run) => return run(),
        Ok(Command::Help) => cli::usage(),
        Ok(Command::Reference) => jobherd::reference::markdown(),
        Ok(Command::Version) => cli::version(),
        Ok(Command::Entrypoint) => {
            let args: Vec<_> = std::env::args_os().skip(2).collect();
            let (message, code) = jobherd::pack::entrypoint(&args);
            if !message.is_empty() {
                eprintln!("{message}");
            }
            return exit(code);
        }
        Err(e) => {
            eprintln!("jobherd: {e}");
            return exit(Exit::Invalid.code());
        }
    };
    // A closed pipe (`jobherd --help-all | head`) is no failure of jobherd's.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    exit(Exit::Succeeded.code())
}

/// A run, as the `JOBHERD_*` variables say.
fn run() -> ExitCode {
    let mode = match Mode::from_env() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("jobherd: {e}");
            return exit(Exit::Invalid.code());
        }
    };
    init_logging(mode.log_format());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("jobherd: cannot start the async runtime: {e}");
            return exit(Exit::Failed.code());
        }
    };
    let outcome = runtime.block_on(async {
        match mode {
            Mode::Run(config) => jobherd::run(*config).await,
            Mode::Trigger(trigger) => jobherd::trigger::trigger(*trigger).await,
        }
    });
    let code = match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("jobherd: {e}");
            e.exit_code()
        }
    };
    exit(code)
}

/// Every code of `Exit` fits in a byte; anything else would be a bug, and still a failure.
fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// jobherd's own log lines go to stderr; stdout carries progress, the table and dry-run output.
/// Colours only on a terminal: `kubectl logs` and Jenkins would show the escape codes.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_target(false).init(),
    }
}
