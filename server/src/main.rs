use std::process::ExitCode;

use clap::Parser;
use latchkey_server::{cli, config::Cli, telemetry};

/// See `Cargo.toml`: why this allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return report_usage_error(err),
    };
    telemetry::init(cli.config.log_format);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return fail(&format!("cannot start the async runtime: {err}")),
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err.to_string()),
    }
}

/// `--help` and `--version` print as usual; a usage error becomes one line on stderr.
fn report_usage_error(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) || matches!(
        err.kind(),
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = err.print();
        return ExitCode::SUCCESS;
    }
    let rendered = err.render().to_string();
    // clap's message may continue on indented lines (e.g. the names of missing arguments);
    // they belong to the one line, the usage block after them does not.
    let message: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty() && !l.starts_with("Usage:"))
        .collect();
    let joined = message.join(" ");
    let line = if joined.is_empty() {
        "invalid arguments"
    } else {
        joined.as_str()
    };
    match env_var_behind(&err) {
        Some(var) => eprintln!("{line} (set by {var}; see --help)"),
        None => eprintln!("{line} (see --help)"),
    }
    ExitCode::from(2)
}

/// When a bad value came from a `LATCHKEY_*` variable rather than the command line, names the
/// variable: clap's message only names the flag, which the user never typed.
fn env_var_behind(err: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let flag = arg.split_whitespace().next()?;
    let long = flag.strip_prefix("--")?;
    if std::env::args().any(|a| a == flag || a.starts_with(&format!("{flag}="))) {
        return None;
    }
    let var = format!("LATCHKEY_{}", long.replace('-', "_").to_ascii_uppercase());
    std::env::var_os(&var).map(|_| var)
}

/// One line, no backtrace: the reason and nothing else.
fn fail(reason: &str) -> ExitCode {
    eprintln!("error: {}", reason.replace('\n', " "));
    ExitCode::FAILURE
}
