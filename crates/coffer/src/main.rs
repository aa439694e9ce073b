//! `coffer`: the server and its command-line client in one binary.

use std::process::ExitCode;

use coffer::{cli, server};

use clap::{Parser, Subcommand};

/// coffer: a Vault-compatible secrets manager.
#[derive(Parser)]
#[command(
    name = "coffer",
    version,
    about,
    long_about = None,
    after_help = "Client commands talk to $COFFER_ADDR, else $VAULT_ADDR (default http://127.0.0.1:8200), \
with the token in $COFFER_TOKEN, else $VAULT_TOKEN, else the one `coffer login` stored in \
~/.coffer-token. $VAULT_CACERT (or $COFFER_CACERT) names a CA certificate to trust. \
Flags may be written with one dash, as Vault's are (-format=json)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Server(server::ServerArgs),
    /// Initialise, unseal, seal and rotate the server.
    #[command(subcommand)]
    Operator(cli::operator::OperatorCommand),
    /// Show seal status (exit code 2 when sealed, like `vault status`).
    Status(cli::ClientArgs),
    /// Read a path.
    Read(cli::generic::ReadArgs),
    /// Write key=value pairs to a path (`k=@file` reads a file, `k=-` reads stdin).
    Write(cli::generic::WriteArgs),
    /// List the keys under a path.
    List(cli::generic::PathArgs),
    /// Delete a path.
    Delete(cli::generic::PathArgs),
    /// Versioned key/value secrets: put, get, patch, delete, undelete, destroy, list, metadata, rollback.
    #[command(subcommand)]
    Kv(cli::kv::KvCommand),
    /// Transit shortcuts: create-key, encrypt, decrypt, rotate, rewrap, datakey, envelope.
    #[command(subcommand)]
    Transit(cli::transit::TransitCommand),
    /// Rotation health: `coffer rotation status`.
    #[command(subcommand)]
    Rotation(cli::rotation::RotationCommand),
    /// Log in (token, userpass, approle) and store the token in ~/.coffer-token.
    Login(cli::auth_cmds::LoginArgs),
    /// Create, look up, renew and revoke tokens.
    #[command(subcommand)]
    Token(cli::auth_cmds::TokenCommand),
    /// Write, read, list and delete ACL policies.
    #[command(subcommand)]
    Policy(cli::auth_cmds::PolicyCommand),
    /// Enable, disable and list auth methods.
    #[command(subcommand)]
    Auth(cli::auth_cmds::AuthCommand),
    /// Mount, list, tune, move and unmount secret engines.
    #[command(subcommand)]
    Secrets(cli::secrets::SecretsCommand),
    /// Look up, renew and revoke leases.
    #[command(subcommand)]
    Lease(cli::lease::LeaseCommand),
    /// Unwrap a response-wrapping token (once).
    Unwrap(cli::generic::UnwrapArgs),
    /// What a path does, from the server (`?help=1`).
    PathHelp(cli::generic::PathArgs),
    /// Print local values: `coffer print token`.
    #[command(subcommand)]
    Print(PrintCommand),
    /// Print the version.
    Version,
    /// Print a shell completion script: `coffer completion bash > /etc/bash_completion.d/coffer`.
    Completion {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Audit devices and logs: list, enable, disable, hash, verify, query.
    #[command(subcommand)]
    Audit(cli::audit::AuditCommand),
    /// SOPS-format files (YAML, JSON, dotenv, INI, binary) with age or
    /// transit keys.
    #[command(subcommand)]
    Sops(cli::sops::SopsCommand),
    /// Find leaked credentials in a directory tree or standard input.
    #[command(subcommand)]
    Scan(cli::scan::ScanCommand),
    /// After a leak: who read it, who could have, and what was done.
    #[command(subcommand)]
    Incident(cli::incident::IncidentCommand),
    /// Seal a Kubernetes Secret for the Sealed Secrets controller (as
    /// kubeseal), or recover Secrets with the controller's private key.
    Seal(cli::seal::SealArgs),
    /// Serve the Kubernetes KMS v2 API on a unix socket for kube-apiserver,
    /// encrypting etcd's data keys with a coffer transit key.
    KmsPlugin(cli::kms_plugin::KmsPluginArgs),
    /// Run the agent: auto-auth, token sinks and templates kept current,
    /// from a Vault/OpenBao Agent configuration file.
    Agent(coffer::agent::AgentArgs),
    /// Run a command with secrets in its environment (nothing on disk):
    /// `coffer run --env DB_PASSWORD=secret/app/db#password -- ./app`.
    Run(cli::run::RunArgs),
}

#[derive(Subcommand)]
enum PrintCommand {
    /// The token later commands would use.
    Token,
}

/// Accepts Vault's single-dash long flags (`-format=json`) by doubling the
/// dash. `coffer scan` takes gitleaks' flags as they are: single-dash
/// words there are values (`--log-opts "-n 3"`).
fn vault_style_args() -> Vec<String> {
    let mut out = Vec::new();
    let mut passthrough = false;
    for (i, a) in std::env::args().enumerate() {
        if i == 0 || passthrough {
            out.push(a);
            continue;
        }
        if a == "--" || (i == 1 && a == "scan") {
            passthrough = true;
            out.push(a);
            continue;
        }
        let name_len = a
            .strip_prefix('-')
            .filter(|r| !r.starts_with('-'))
            .map(|r| r.split('=').next().unwrap_or(""))
            // A value that starts with `-` ("-n 3") is not a flag.
            .filter(|n| {
                n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            })
            .map_or(0, str::len);
        if name_len > 1 {
            out.push(format!("-{a}"));
        } else {
            out.push(a);
        }
    }
    out
}

/// A command piped into `head` ends quietly when the pipe closes (exit
/// 141, as a shell reports SIGPIPE) instead of printing println!'s panic.
/// SIGPIPE itself stays ignored: the HTTP client's socket writes need that.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

// mimalloc: about 6% less CPU per KV request than glibc's malloc under
// concurrent load (bench/README.md), for a few MiB more resident memory.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `arena_eager_commit` option (its `mi_option_e` value).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Commit arena memory as it is used, not a whole arena at the first
/// allocation: with transparent huge pages the eager commit made every
/// process (an agent holding one template) start at 7 MB more RSS. Set
/// from `.init_array`, before the first allocation creates the arena.
extern "C" fn mimalloc_options() {
    // SAFETY: sets a mimalloc option; no memory is touched.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
}

#[used]
#[unsafe(link_section = ".init_array")]
static MIMALLOC_OPTIONS: extern "C" fn() = mimalloc_options;

fn main() -> ExitCode {
    // Usage mistakes exit 1, as Vault's CLI and docs/cli.md say (clap's
    // own default is 2, which here means a server or network error).
    let mut args = vault_style_args();
    if args.get(1).map(String::as_str) == Some("sops")
        && let Some(sub) = cli::sops::legacy_args(&args[2..])
    {
        args.truncate(2);
        args.extend(sub);
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // gitleaks exits 126 on a flag it does not know; scripts that
            // wrap it may test for that.
            let scan = std::env::args().nth(1).as_deref() == Some("scan");
            let code = match e.kind() {
                clap::error::ErrorKind::UnknownArgument if scan => 126,
                _ if e.use_stderr() => 1,
                _ => 0,
            };
            return ExitCode::from(code);
        }
    };
    quiet_on_closed_stdout();
    // The agent and `run --watch` wait on the network almost always: one
    // thread is all they need, and each thread costs memory.
    let small = matches!(&cli.command, Command::Agent(_))
        || matches!(&cli.command, Command::Run(r) if r.watch);
    let built = if small {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    let rt = match built {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A refused login is not a missing token: no "set VAULT_TOKEN" hint.
    let logging_in = matches!(cli.command, Command::Login(_));
    let result = rt.block_on(async move {
        match cli.command {
            Command::Server(a) => server::run(a).await.map(|_| 0),
            Command::Operator(c) => cli::operator::run(c).await,
            Command::Status(a) => cli::operator::status(a).await,
            Command::Read(a) => cli::generic::read(a).await,
            Command::Write(a) => cli::generic::write(a).await,
            Command::List(a) => cli::generic::list(a).await,
            Command::Delete(a) => cli::generic::delete(a).await,
            Command::Kv(c) => cli::kv::run(c).await,
            Command::Transit(c) => cli::transit::run(c).await,
            Command::Rotation(c) => cli::rotation::run(c).await,
            Command::Login(a) => cli::auth_cmds::login(a).await,
            Command::Token(c) => cli::auth_cmds::token(c).await,
            Command::Policy(c) => cli::auth_cmds::policy(c).await,
            Command::Auth(c) => cli::auth_cmds::auth(c).await,
            Command::Audit(c) => cli::audit::run(c).await,
            Command::Sops(cli::sops::SopsCommand::Completion { shell }) => {
                clap_complete::generate(
                    shell,
                    &mut <Cli as clap::CommandFactory>::command(),
                    "coffer",
                    &mut std::io::stdout(),
                );
                Ok(0)
            }
            Command::Sops(c) => cli::sops::run(c).await,
            Command::Scan(c) => cli::scan::run(c).await,
            Command::Incident(c) => cli::incident::run(c).await,
            Command::Seal(a) => cli::seal::run(a).await,
            Command::KmsPlugin(a) => cli::kms_plugin::run(a).await,
            Command::Agent(a) => coffer::agent::run(a).await,
            Command::Run(a) => cli::run::run(a).await,
            Command::Secrets(c) => cli::secrets::run(c).await,
            Command::Lease(c) => cli::lease::run(c).await,
            Command::Unwrap(a) => cli::generic::unwrap(a).await,
            Command::PathHelp(a) => cli::generic::path_help(a).await,
            Command::Print(PrintCommand::Token) => match cli::current_token() {
                Some(t) => {
                    println!("{t}");
                    Ok(0)
                }
                None => Err(anyhow::anyhow!(
                    "no token is set: run `coffer login` or set VAULT_TOKEN"
                )),
            },
            Command::Version => {
                println!("coffer v{}", env!("CARGO_PKG_VERSION"));
                Ok(0)
            }
            Command::Completion { shell } => {
                use clap::CommandFactory as _;
                clap_complete::generate(
                    shell,
                    &mut Cli::command(),
                    "coffer",
                    &mut std::io::stdout(),
                );
                Ok(0)
            }
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            match cli::no_token_hint(&e).filter(|_| !logging_in) {
                Some(hint) => eprintln!("Error: {hint} ({e:#})"),
                None => eprintln!("Error: {e:#}"),
            }
            ExitCode::from(if e.downcast_ref::<cli::UsageError>().is_some() {
                1
            } else {
                2
            })
        }
    }
}
