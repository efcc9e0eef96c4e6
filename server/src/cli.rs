//! The command line's subcommands. Each one is a thin call into the server or a service; output
//! meant for scripts goes to stdout, logs go to stderr.

use crate::{
    config::{Cli, Command, unknown_env_vars},
    server::{self, StartupError},
};

pub async fn run(cli: Cli) -> Result<(), StartupError> {
    for var in unknown_env_vars() {
        tracing::warn!(variable = %var, "unknown LATCHKEY_ variable ignored (a typo?)");
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let services = server::open_database(&cli.config).await?;
            server::start(&cli.config, services, server::os_shutdown_signal())
                .await?
                .wait()
                .await
        }
        Command::Migrate => {
            let services = server::open_database(&cli.config).await?;
            tracing::info!(database = %cli.config.database_url, "migrations applied");
            let _ = services.close().await;
            Ok(())
        }
    }
}
