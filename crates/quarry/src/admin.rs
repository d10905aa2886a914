//! `quarry admin`: administration through the instance's database, for deployments and scripts
//! that have no browser (the database is the authority: whoever can open it runs the instance).

use anyhow::Context;
use quarry_auth::{Accounts, Actor};
use quarry_config::SiteConfigManager;
use quarry_store::Store;

use crate::cli::{AdminArgs, AdminCommand, TokenCommand, TokenCreateArgs, data_dir};

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    match args.command {
        AdminCommand::Token(TokenCommand::Create(args)) => create_token(args).await,
    }
}

async fn create_token(args: TokenCreateArgs) -> anyhow::Result<()> {
    let store = match &args.database_url {
        Some(url) => Store::open(url).await?,
        None => {
            let path = data_dir(args.data_dir.clone())?.join("quarry.db");
            anyhow::ensure!(
                path.exists(),
                "no Quarry database at {}: pass --data-dir (or --database-url) of the instance",
                path.display()
            );
            Store::open_sqlite(&path).await?
        }
    };
    let site = SiteConfigManager::load(store.clone(), None)
        .await
        .context("cannot read the site configuration")?;
    let accounts = Accounts::new(store.clone(), site.live());
    let operator = Actor::operator();
    let user = accounts.user_named(&args.user).await?;
    let (_, token) = accounts
        .create_access_token(&operator, user.id, &args.scopes, &args.note)
        .await?;
    store.close().await;
    println!("{token}");
    Ok(())
}
