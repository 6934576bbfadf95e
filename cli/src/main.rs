//! `changegate`: ask for, approve, follow, use and end just-in-time
//! production access, as yourself (the standard AWS credential chain:
//! environment, profiles, IAM Identity Center, credential_process).
//! Thin: arguments here, the commands in [`commands`], the decisions in the
//! `changegate` crate the functions use.

mod commands;
mod deployment;
mod error;
mod view;
mod when;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use error::{CliError, Exit};

const EXIT_CODES: &str = "\
Exit codes: 0 done; 1 AWS fault (nothing decided: try again); 2 usage;
3 refused (changegate refuses or refused it, or it is not yours to do);
4 waiting (not decided, or the window has not started); 5 not found.";

const EXAMPLES: &str = "\
Examples:
  changegate request prod --for 2h --reason INC-4711 --dry-run
  changegate request prod --for 2h --start 18:00 --reason INC-4711
  changegate request prod --for 1h --wait   # follow it until it is decided
  changegate status                      # my requests
  changegate list --pending              # what waits for my decision
  changegate approve <ID> --comment ok   # as an approver
  eval \"$(changegate assume <ID>)\"       # shell exports for the role
  changegate assume <ID> -- aws s3 ls    # or run one command as it
  changegate extend <ID> --by 1h         # more time, without a gap (approved again)
  changegate end <ID>                    # end my access now";

#[derive(Parser, Debug)]
#[command(name = "changegate", version, about = "Just-in-time production access through changegate", after_help = format!("{EXAMPLES}\n\n{EXIT_CODES}"))]
struct Cli {
    /// The changegate stack to use (its settings are read from SSM).
    #[arg(
        long,
        global = true,
        env = "CHANGEGATE_STACK",
        default_value = "changegate"
    )]
    stack: String,
    /// AWS region (default: the credential chain's, AWS_REGION).
    #[arg(long, global = true)]
    region: Option<String>,
    /// AWS profile (default: AWS_PROFILE, then the default profile).
    #[arg(long, global = true)]
    profile: Option<String>,
    /// Output: text for people, json for scripts.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Ask for access to an account's production role.
    #[command(
        after_help = "Times are read in your local time zone and shown back in UTC and local."
    )]
    Request {
        /// The account: a 12-digit id or one of the deployment's aliases.
        account: String,
        /// How long: 30m, 2h, 1h30m (at most the deployment's maximum).
        #[arg(long = "for", value_name = "LENGTH")]
        length: String,
        /// When it starts: now (default), +30m, 18:00, 2026-12-05 18:00, or RFC 3339.
        #[arg(long)]
        start: Option<String>,
        /// Why, for the approvers (one line, at most 500 characters).
        #[arg(long, default_value = "")]
        reason: String,
        /// Whose access (default: yours; someone else's only with delegation on).
        #[arg(long)]
        user: Option<String>,
        /// Run grant's checks read-only and say what would be refused; file nothing.
        #[arg(long, conflicts_with = "wait")]
        dry_run: bool,
        /// Follow the request through approval and grant, then exit as status does.
        #[arg(long)]
        wait: bool,
    },
    /// Where a request stands (default: your recent requests).
    Status {
        /// The request's id (its execution id).
        id: Option<String>,
    },
    /// The account's open requests: all, those waiting for a decision, or live grants.
    List {
        /// Only requests waiting for a decision that you may give (not your own).
        #[arg(long, conflicts_with = "active")]
        pending: bool,
        /// Only granted requests (live or approved for later), with time left.
        #[arg(long)]
        active: bool,
    },
    /// Approve a request (as one of the deployment's approvers).
    Approve {
        id: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Reject a request, saying why.
    Reject {
        id: String,
        #[arg(long)]
        comment: String,
    },
    /// End your access now: withdraws a request still waiting for approval,
    /// or ends a granted one with the stack's end runbook.
    End {
        id: String,
        /// Why (shown in the revocation message).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Extend a granted request: a linked request from its start until its
    /// end plus LENGTH, approved by the same rules; once granted, the access
    /// goes on without a gap.
    Extend {
        /// The granted request's id.
        id: String,
        /// By how much: 30m, 1h, 1h30m (the whole, from the original start,
        /// at most the deployment's maximum).
        #[arg(long, value_name = "LENGTH")]
        by: String,
        /// Why, for the approvers.
        #[arg(long, default_value = "")]
        reason: String,
        /// Follow it until changegate has decided.
        #[arg(long)]
        wait: bool,
    },
    /// End someone's access now (operators): runs the stack's end runbook.
    Revoke {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Assume the production role of a granted request, named as the grant requires.
    Assume {
        /// The request's id.
        id: String,
        /// Print the credentials as a credential_process answer (~/.aws/config).
        #[arg(long)]
        credential_process: bool,
        /// A command to run with the role's credentials.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Shell completions: changegate completions bash > /etc/bash_completion.d/changegate
    Completions { shell: clap_complete::Shell },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "changegate",
            &mut std::io::stdout(),
        );
        return Exit::Ok.into();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("changegate: cannot start: {e}");
            return Exit::Fault.into();
        }
    };
    let output = cli.output;
    match runtime.block_on(run(cli)) {
        Ok(done) => {
            print(output, &done.text, &done.json);
            done.exit.into()
        }
        Err(e) => {
            match output {
                Output::Json => println!(
                    "{}",
                    serde_json::json!({"error": e.code(), "message": e.to_string(), "hint": e.hint()})
                ),
                Output::Text => {
                    eprintln!("changegate: {e}");
                    if let Some(hint) = e.hint() {
                        eprintln!("  next: {hint}");
                    }
                }
            }
            e.exit().into()
        }
    }
}

fn print(output: Output, text: &str, json: &serde_json::Value) {
    match output {
        Output::Text if !text.is_empty() => println!("{text}"),
        Output::Text => {}
        Output::Json => println!("{json}"),
    }
}

/// What a command did: for people, for scripts, and how it exits.
pub struct Done {
    pub text: String,
    pub json: serde_json::Value,
    pub exit: Exit,
}

async fn run(cli: Cli) -> Result<Done, CliError> {
    let ctx = commands::Context::load(&cli.stack, cli.region, cli.profile).await?;
    match cli.command {
        Command::Request {
            account,
            length,
            start,
            reason,
            user,
            dry_run,
            wait,
        } => {
            let ask = commands::Ask {
                account: &account,
                length: &length,
                start: start.as_deref(),
                reason: &reason,
                user: user.as_deref(),
            };
            commands::request(&ctx, &ask, dry_run, wait).await
        }
        Command::List { pending, active } => {
            let only = match (pending, active) {
                (true, _) => commands::Only::Pending,
                (_, true) => commands::Only::Active,
                _ => commands::Only::All,
            };
            commands::list(&ctx, only).await
        }
        Command::Status { id } => commands::status(&ctx, id.as_deref()).await,
        Command::Approve { id, comment } => commands::decide(&ctx, &id, true, &comment).await,
        Command::Reject { id, comment } => commands::decide(&ctx, &id, false, &comment).await,
        Command::End { id, reason } => commands::end(&ctx, &id, &reason).await,
        Command::Revoke { id, reason } => commands::revoke(&ctx, &id, &reason).await,
        Command::Extend {
            id,
            by,
            reason,
            wait,
        } => commands::extend(&ctx, &id, &by, &reason, wait).await,
        Command::Assume {
            id,
            credential_process,
            command,
        } => commands::assume(&ctx, &id, credential_process, &command).await,
        Command::Completions { .. } => unreachable!("handled before AWS is loaded"),
    }
}
