//! Command-line arguments. Every option that has an environment variable names it in `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "quarry",
    version,
    about = "Code search and code intelligence for all of your repositories",
    long_about = "Quarry mirrors your git repositories and makes their code searchable and navigable.\n\nStart with `quarry serve DIR`: it mirrors every git repository under DIR and serves the instance on http://127.0.0.1:7080.",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the all-in-one instance: web API, gitserver and background work in one process.
    Serve(ServeArgs),
    /// Run a gitserver shard that owns mirrors for the repositories hashed to it.
    Gitserver(GitserverArgs),
    /// Run an index server: indexes and searches the repositories hashed to it.
    Indexserver(IndexserverArgs),
    /// Search an instance and print the results (exit status 0: results, 1: none, 2: error).
    Search(SearchArgs),
    /// Administer an instance through its database (run where the instance's data is).
    Admin(AdminArgs),
    /// Run an executor: take jobs from an instance's queues and run their steps in a sandbox.
    /// Configured by Sourcegraph's executor environment variables (EXECUTOR_FRONTEND_URL,
    /// EXECUTOR_FRONTEND_PASSWORD, EXECUTOR_QUEUE_NAME or EXECUTOR_QUEUE_NAMES, ...).
    #[command(subcommand)]
    Executor(ExecutorCommand),
}

#[derive(Subcommand)]
pub enum ExecutorCommand {
    /// Take and run jobs until stopped (SIGTERM drains: running jobs finish first).
    Run,
    /// Check the configuration, the tools steps need and the instance's answer to the secret.
    Validate,
}

#[derive(Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an access token for a user and print it (it is shown only this once).
    Create(TokenCreateArgs),
}

#[derive(Args)]
pub struct TokenCreateArgs {
    /// The user (username or email) the token acts as.
    #[arg(long)]
    pub user: String,

    /// What the token is for.
    #[arg(long, default_value = "created with quarry admin token create")]
    pub note: String,

    /// Scopes: user:all (always), and site-admin:sudo for a site admin's token.
    #[arg(long = "scope", value_name = "SCOPE", default_value = "user:all")]
    pub scopes: Vec<String>,

    /// Where the instance keeps its data (its embedded database) [default: ~/.local/share/quarry].
    #[arg(long, env = "QUARRY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// The instance's PostgreSQL database, when it uses one.
    #[arg(
        long,
        env = "QUARRY_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
}

#[derive(Args)]
pub struct SearchArgs {
    /// The query, in Sourcegraph's query language (several words are joined with spaces).
    #[arg(
        value_name = "QUERY",
        required = true,
        allow_hyphen_values = true,
        trailing_var_arg = true
    )]
    pub query: Vec<String>,

    /// Print one JSON match per line instead of grep-style lines.
    #[arg(long)]
    pub json: bool,

    /// The instance to search.
    #[arg(long, env = "SRC_ENDPOINT", default_value = quarry_client::DEFAULT_ENDPOINT)]
    pub endpoint: String,

    /// An access token, sent as `Authorization: token ...`.
    #[arg(
        long,
        env = "SRC_ACCESS_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub access_token: Option<String>,
}

#[derive(Args)]
#[command(after_help = "\
Each TARGET is one of:
  a directory that is a git repository       it is mirrored
  a directory that is not                     it is scanned for git repositories (nested ones too)
  a git URL (https://, ssh://, git@host:path, file://)   it is mirrored from there
With no TARGET, the current directory is used. Targets become code host connections, kept in the
database: later starts add new targets and keep the old ones.

Environment:
  QUARRY_LOG_FORMAT=json        structured JSON logs (default: human-readable)
  QUARRY_LOG=info,quarry=debug  log filter (default: info)
  QUARRY_GITSERVERS=a:3178,b:3178   use these gitserver shards instead of the in-process one
  QUARRY_INTERNAL_SECRET         the secret shared with gitserver shards")]
pub struct ServeArgs {
    /// Repositories to mirror: directories or git URLs.
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,

    /// Address to listen on.
    #[arg(long, env = "QUARRY_LISTEN", default_value = "127.0.0.1:7080")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub shared: SharedArgs,

    /// A postgres:// URL to use PostgreSQL instead of the embedded SQLite database.
    #[arg(
        long,
        env = "QUARRY_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// A site configuration file (JSON with comments) saved as the configuration in force.
    #[arg(long, env = "QUARRY_SITE_CONFIG_FILE", value_name = "FILE")]
    pub site_config: Option<PathBuf>,

    /// Gitserver shards (comma-separated host:port) instead of the in-process gitserver.
    #[arg(
        long,
        env = "QUARRY_GITSERVERS",
        value_delimiter = ',',
        value_name = "ADDRS"
    )]
    pub gitservers: Vec<String>,

    /// Index servers (comma-separated host:port) that index and search instead of this process.
    #[arg(
        long,
        env = "QUARRY_INDEXSERVERS",
        value_delimiter = ',',
        value_name = "ADDRS"
    )]
    pub indexservers: Vec<String>,

    /// A job whose executor sends no heartbeat for this long goes back to its queue (after 3
    /// such resets it fails).
    #[arg(long, env = "QUARRY_JOB_STALL_AFTER", default_value = "25s", value_parser = humantime::parse_duration)]
    pub job_stall_after: std::time::Duration,
}

#[derive(Args)]
pub struct IndexserverArgs {
    /// Address to listen on. A non-loopback address requires QUARRY_INTERNAL_SECRET.
    #[arg(
        long,
        env = "QUARRY_INDEXSERVER_LISTEN",
        default_value = "127.0.0.1:3179"
    )]
    pub listen: SocketAddr,

    /// This server's entry in QUARRY_INDEXSERVERS [default: the --listen address].
    #[arg(long, env = "QUARRY_INDEXSERVER_ADDRESS", value_name = "ADDR")]
    pub address: Option<String>,

    /// Every index server (comma-separated host:port), the same list the frontend has.
    #[arg(
        long,
        env = "QUARRY_INDEXSERVERS",
        value_delimiter = ',',
        value_name = "ADDRS",
        required = true
    )]
    pub indexservers: Vec<String>,

    /// The gitserver shards (comma-separated host:port) holding the mirrors.
    #[arg(
        long,
        env = "QUARRY_GITSERVERS",
        value_delimiter = ',',
        value_name = "ADDRS",
        required = true
    )]
    pub gitservers: Vec<String>,

    /// The instance's database (the one the frontend uses).
    #[arg(
        long,
        env = "QUARRY_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: String,

    #[command(flatten)]
    pub shared: SharedArgs,
}

#[derive(Args)]
pub struct GitserverArgs {
    /// Address to listen on. A non-loopback address requires QUARRY_INTERNAL_SECRET.
    #[arg(
        long,
        env = "QUARRY_GITSERVER_LISTEN",
        default_value = "127.0.0.1:3178"
    )]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub shared: SharedArgs,
}

/// Options every service takes.
#[derive(Args)]
pub struct SharedArgs {
    /// Files larger than this many bytes are indexed and searched by path only.
    #[arg(long, env = "QUARRY_SEARCH_MAX_FILE_SIZE", default_value_t = quarry_search::DEFAULT_MAX_FILE_SIZE, value_name = "BYTES")]
    pub search_max_file_size: u64,

    /// Where mirrors and the embedded database live [default: ~/.local/share/quarry].
    #[arg(long, env = "QUARRY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// The secret Quarry's own processes share (gitserver shards require it beyond loopback).
    #[arg(
        long,
        env = "QUARRY_INTERNAL_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub internal_secret: Option<String>,
}

/// The data directory: the option, else `$XDG_DATA_HOME/quarry`, else `~/.local/share/quarry`.
pub fn data_dir(option: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = option {
        return Ok(dir);
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("quarry"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/share/quarry")),
        None => {
            anyhow::bail!("cannot find a home directory: pass --data-dir or set QUARRY_DATA_DIR")
        }
    }
}
