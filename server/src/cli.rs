//! The command line's subcommands. Each one is a thin call into the server or a service; output
//! meant for scripts goes to stdout, logs go to stderr.

use std::io::Write;

use latchkey_core::{
    audit::RequestMeta, metadata::Importer, operators::Inviter, tenants::NewTenant,
};

use crate::{
    config::{
        ApiKeyCommand, AuditCommand, Cli, Command, MdsCommand, OperatorCommand, TenantCommand,
        unknown_env_vars,
    },
    server::{self, StartupError},
};

pub async fn run(cli: Cli) -> Result<(), StartupError> {
    for var in unknown_env_vars() {
        tracing::warn!(variable = %var, "unknown LATCHKEY_ variable ignored (a typo?)");
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let services = server::open_database(&cli.config).await?;
            let running =
                server::start(&cli.config, services.clone(), server::os_shutdown_signal()).await?;
            // Logged once the port is bound, so the link works when someone reads it.
            server::announce_setup(&cli.config, &services).await?;
            running.wait().await
        }
        Command::Operator(OperatorCommand::Invite {
            email,
            instance_admin,
        }) => {
            let services = server::open_database(&cli.config).await?;
            let invited = services
                .operators()
                .invite(Inviter::Cli, &email, instance_admin, RequestMeta::default())
                .await;
            let _ = services.close().await;
            // The URL is the only thing on stdout, for scripts.
            println!("{}", invited?.url(&cli.config.public_url));
            Ok(())
        }
        Command::Tenant(TenantCommand::Create {
            name,
            rp_id,
            origins,
            enable_passkeys,
            owner,
        }) => {
            let services = server::open_database(&cli.config).await?;
            let created = services
                .tenants()
                .create_for_automation(NewTenant {
                    name,
                    rp_id,
                    origins,
                    enable_passkeys,
                    owner_email: owner,
                })
                .await;
            let _ = services.close().await;
            println!("{}", serde_json::json!({ "tenant_id": created? }));
            Ok(())
        }
        Command::ApiKey(ApiKeyCommand::Create { tenant, name }) => {
            let tenant = parse_tenant(&tenant)?;
            let services = server::open_database(&cli.config).await?;
            let created = async {
                let access = services.tenant_for_host(tenant).await?;
                services
                    .api_keys()
                    .create(&access, &name, RequestMeta::default())
                    .await
            }
            .await;
            let _ = services.close().await;
            println!("{}", serde_json::json!({ "api_key": created?.secret }));
            Ok(())
        }
        Command::Export { tenant, to } => {
            let tenant = parse_tenant(&tenant)?;
            let services = server::open_database(&cli.config).await?;
            let exported = async {
                // A named file must be new, and is flushed to disk before the command succeeds.
                let (mut out, file): (Box<dyn std::io::Write>, _) = match &to {
                    Some(path) => {
                        let file = std::fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .open(path)
                            .map_err(|e| {
                                latchkey_core::Error::invalid(
                                    "to",
                                    format!(
                                        "{}: {e} (the export must be a new file)",
                                        path.display()
                                    ),
                                )
                            })?;
                        let handle = file.try_clone().map_err(io_error)?;
                        (Box::new(std::io::BufWriter::new(file)), Some(handle))
                    }
                    None => (
                        Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
                        None,
                    ),
                };
                let counts = services.export_tenant(tenant, &mut out).await?;
                out.flush().map_err(io_error)?;
                if let Some(file) = file {
                    file.sync_all().map_err(io_error)?;
                }
                Ok::<_, latchkey_core::Error>(counts)
            }
            .await;
            let _ = services.close().await;
            let counts = exported?;
            tracing::info!(
                users = counts.users,
                passkeys = counts.passkeys,
                devices = counts.devices,
                "tenant exported"
            );
            Ok(())
        }
        Command::Import { from, owner } => {
            let file = std::fs::File::open(&from).map_err(|e| {
                latchkey_core::Error::invalid("from", format!("{}: {e}", from.display()))
            })?;
            let services = server::open_database(&cli.config).await?;
            let imported = services
                .import_tenant(std::io::BufReader::new(file), owner.as_deref())
                .await;
            let _ = services.close().await;
            let (tenant_id, counts) = imported?;
            println!(
                "{}",
                serde_json::json!({
                    "tenant_id": tenant_id,
                    "users": counts.users,
                    "passkeys": counts.passkeys,
                    "devices": counts.devices,
                })
            );
            Ok(())
        }
        Command::Audit(AuditCommand::Purge {
            older_than_days,
            export_to,
        }) => {
            let services = server::open_database(&cli.config).await?;
            let purged = services
                .purge_audit(
                    chrono::Duration::days(i64::from(older_than_days)),
                    &export_to,
                )
                .await;
            let _ = services.close().await;
            let purged = purged?;
            println!(
                "{}",
                serde_json::json!({
                    "cutoff": purged.cutoff.to_rfc3339(),
                    "deleted": purged.deleted,
                    "export": purged.export,
                    "export_sha256": purged.export_sha256,
                })
            );
            Ok(())
        }
        Command::Audit(AuditCommand::Seal) => {
            let services = server::open_database(&cli.config).await?;
            let sealed = services.seal_audit().await;
            let _ = services.close().await;
            let report = match sealed? {
                Some(s) => {
                    serde_json::json!({ "seal": s.seal_id, "events": s.events, "hash": s.hash })
                }
                None => serde_json::json!({ "seal": null }),
            };
            println!("{report}");
            Ok(())
        }
        Command::Audit(AuditCommand::Verify { tenant, checkpoint }) => {
            let tenant = tenant.as_deref().map(parse_tenant).transpose()?;
            let checkpoint = checkpoint.as_deref().map(parse_checkpoint).transpose()?;
            let services = server::open_database(&cli.config).await?;
            let verified = services.verify_audit(tenant, checkpoint).await;
            let _ = services.close().await;
            let v = verified?;
            println!(
                "{}",
                serde_json::json!({
                    "intact": v.is_intact(),
                    "seals": v.seals,
                    "latest_seal": v.latest_seal.as_ref().map(|s| serde_json::json!({
                        "id": s.id,
                        "hash": s.hash,
                        "sealed_at": s.sealed_at.to_rfc3339(),
                        "checkpoint": format!("{}:{}", s.id, s.hash),
                    })),
                    "chains": v.chains.iter().map(|c| serde_json::json!({
                        "chain": c.chain,
                        "verified": c.verified,
                        "purged": c.purged,
                        "head": { "seq": c.head.seq, "hash": c.head.hash },
                    })).collect::<Vec<_>>(),
                    "pending": v.pending,
                    "findings": v.findings.iter().map(ToString::to_string).collect::<Vec<_>>(),
                })
            );
            match v.findings.first() {
                None => Ok(()),
                Some(first) => Err(StartupError::AuditMismatch(first.to_string())),
            }
        }
        Command::Mds(MdsCommand::Import { file }) => {
            let text = read_blob(&file)?;
            let services = server::open_database(&cli.config).await?;
            let imported = services
                .metadata()
                .import(Importer::Cli, text, RequestMeta::default())
                .await;
            let _ = services.close().await;
            let imported = imported?;
            println!(
                "{}",
                serde_json::json!({
                    "serial": imported.serial,
                    "next_update": imported.next_update.to_string(),
                    "models": imported.models,
                    "flagged_passkeys": imported.flagged_passkeys,
                })
            );
            Ok(())
        }
        Command::Backup { to } => {
            let backup = latchkey_core::db::backup::sqlite(&cli.config.db_options(), &to).await?;
            println!(
                "{}",
                serde_json::json!({ "backup": backup.path, "bytes": backup.bytes })
            );
            Ok(())
        }
        Command::Migrate => {
            let services = server::open_database(&cli.config).await?;
            tracing::info!(database = %cli.config.database_url, "migrations applied");
            let _ = services.close().await;
            Ok(())
        }
    }
}

/// The BLOB file's text, refused before reading when it is larger than any BLOB.
fn read_blob(path: &std::path::Path) -> Result<String, latchkey_core::Error> {
    let invalid = |message: String| latchkey_core::Error::invalid("file", message);
    let size = std::fs::metadata(path)
        .map_err(|e| invalid(format!("{}: {e}", path.display())))?
        .len();
    if size > latchkey_core::metadata::MAX_BLOB_BYTES as u64 {
        return Err(invalid(format!(
            "{}: {size} bytes is larger than any FIDO metadata BLOB.",
            path.display()
        )));
    }
    std::fs::read_to_string(path).map_err(|e| invalid(format!("{}: {e}", path.display())))
}

fn parse_tenant(raw: &str) -> Result<uuid::Uuid, latchkey_core::Error> {
    uuid::Uuid::parse_str(raw.trim())
        .map_err(|_| latchkey_core::Error::invalid("tenant", "Not a tenant id (a UUID)."))
}

/// `SEAL:HASH`, as `latchkey audit verify` prints a seal's checkpoint.
fn parse_checkpoint(raw: &str) -> Result<(i64, String), latchkey_core::Error> {
    raw.trim()
        .split_once(':')
        .and_then(|(seal, hash)| {
            let hash = hash.trim().to_ascii_lowercase();
            let valid = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
            Some((seal.trim().parse::<i64>().ok()?, hash)).filter(|_| valid)
        })
        .ok_or_else(|| {
            latchkey_core::Error::invalid(
                "checkpoint",
                "Give a seal as SEAL:HASH (its number, a colon and 64 hex digits).",
            )
        })
}

fn io_error(err: std::io::Error) -> latchkey_core::Error {
    latchkey_core::Error::Internal(err.to_string())
}
