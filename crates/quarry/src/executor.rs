//! `quarry executor run | validate`: wiring of the executor crate.

use std::process::ExitCode;

use quarry_executor::Config;

use crate::cli::ExecutorCommand;

pub async fn run(command: ExecutorCommand) -> anyhow::Result<ExitCode> {
    let vars = std::env::vars().collect();
    let config = Config::from_vars(&vars)?;
    match command {
        ExecutorCommand::Run => {
            quarry_executor::run(config, crate::shutdown::on_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        ExecutorCommand::Validate => match quarry_executor::validate(&config).await {
            Ok(()) => {
                println!(
                    "executor configuration is valid; {} answers the secret",
                    config.frontend_url
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(problems) => {
                for problem in problems {
                    eprintln!("error: {problem}");
                }
                Ok(ExitCode::FAILURE)
            }
        },
    }
}
