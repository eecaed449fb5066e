//! Entry point: reads the configuration, sets up logging, runs, and exits with SPEC's code.

use std::process::ExitCode;

use jobherd::config::{LogFormat, Mode};

fn main() -> ExitCode {
    let mode = match Mode::from_env() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("jobherd: {e}");
            return ExitCode::from(2);
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
            return ExitCode::from(1);
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
