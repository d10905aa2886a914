//! `quarry search`: a search from the command line, against `SRC_ENDPOINT`.

use std::io::IsTerminal;
use std::process::ExitCode;

use quarry_client::{Endpoint, Printer};

use crate::cli::SearchArgs;

/// Runs the search; exit status 0 when something matched, 1 when nothing did, 2 on error.
pub async fn run(args: SearchArgs) -> ExitCode {
    let endpoint = Endpoint::new(&args.endpoint, args.access_token.clone());
    let query = args.query.join(" ");
    let stdout = std::io::stdout();
    let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut printer = Printer::new(stdout.lock(), args.json, color);
    let result = endpoint
        .search(&query, &mut |name, data| {
            printer.event(name, data).map_err(Into::into)
        })
        .await;
    let summary = &printer.summary;
    for note in &summary.notes {
        eprintln!("{note}");
    }
    if let Err(e) = result {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    if std::io::stderr().is_terminal() {
        eprintln!(
            "{} results in {} ms",
            summary.match_count, summary.duration_ms
        );
    }
    if summary.printed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
