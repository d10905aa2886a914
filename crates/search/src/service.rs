//! Running a search: resolving repositories and revisions, scanning them in parallel with
//! bounded concurrency, and turning what is found into a stream of ranked events.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quarry_config::LiveSiteConfig;
use quarry_gitserver::GitService;
use quarry_store::{CloneStatus, Repo, RepoFilter, Store, Viewer};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::io::{StreamReader, SyncIoBridge};
use tokio_util::sync::CancellationToken;

use crate::archive::{self, ScanStats, SkippedFiles};
use crate::events::{
    Alert, ChunkMatch, ErrorMessage, Facet, Location, Match, Progress, Range, SearchEvent, Skipped,
    SuggestedQuery,
};
use crate::index::{self, IndexCatalog};
use crate::languages::Language;
use crate::matcher::{FileMatch, LineMatch, match_file};
use crate::query::{BasicQuery, ParseError, PatternType, Plan, ResultType, Select, Tristate, plan};
use crate::ranking::score;
use crate::shards::{Ownership, RemoteShard};

/// Files larger than this are not searched by content (large enough for amalgamated C sources).
pub const DEFAULT_MAX_FILE_SIZE: u64 = 32 * 1024 * 1024;
/// Results are held back at most this long, so that those arriving together are sent ranked.
const FLUSH_INTERVAL: Duration = Duration::from_millis(20);
/// Results held back before they are sent, counted in matches (a file with many matching lines
/// counts for each), so that memory stays bounded however large the files.
const MAX_BATCH: usize = 5000;
/// Prepared results waiting for the sender; small, so that scanning threads wait for a slow
/// client instead of piling up results in memory.
const FOUND_QUEUE: usize = 32;
/// How often an index worker reports the statistics of the repositories it has searched (and
/// once more when it runs out of work): each report wakes the search.
const STATS_INTERVAL: Duration = Duration::from_millis(100);
/// Files an index worker holds back before sending them to the search.
const FILES_BATCH: usize = 8;
/// An index worker that finishes a repository sends the files it holds once the first of them
/// is this old (else they wait for the next repository or a full batch), so that the few matches
/// of many repositories reach the search together rather than one wake-up each.
const FILES_HOLD: Duration = Duration::from_millis(2);
/// How often progress is reported while a search runs.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);
/// The most facets of each kind in the `filters` event.
const MAX_FACETS: usize = 25;

/// The most context lines a search returns around a match.
pub const MAX_CONTEXT_LINES: usize = 10;

#[derive(Debug, Clone, Copy)]
pub struct SearchOptions {
    /// How patterns are read unless the query says `patterntype:`.
    pub pattern_type: PatternType,
    /// Lines of context around each matching line (Sourcegraph's `cl`), at most
    /// [`MAX_CONTEXT_LINES`]; chunks that touch are merged.
    pub context_lines: usize,
    /// Whose search it is: repositories the viewer may not see are never searched nor counted.
    pub viewer: Viewer,
}

impl SearchOptions {
    /// The default pattern type, for this viewer.
    pub fn for_viewer(viewer: Viewer) -> Self {
        SearchOptions {
            pattern_type: PatternType::Keyword,
            context_lines: 0,
            viewer,
        }
    }
}

/// Where a repository's index stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexState {
    /// Indexed at the head commit.
    Current,
    /// Indexed at an older commit (searched from git until the index catches up).
    Outdated,
    NotIndexed,
    /// Indexes live on index servers, which this process does not see.
    OnIndexServers,
    /// Indexed search is off.
    Disabled,
}

impl IndexState {
    pub fn label(self) -> &'static str {
        match self {
            IndexState::Current => "indexed",
            IndexState::Outdated => "index outdated",
            IndexState::NotIndexed => "not indexed",
            IndexState::OnIndexServers => "on index servers",
            IndexState::Disabled => "indexing disabled",
        }
    }
}

/// Runs searches. Cheap to clone; clones share the bound on concurrent repository scans.
#[derive(Clone)]
pub struct Searcher {
    store: Store,
    git: Arc<dyn GitService>,
    index: Option<(Arc<IndexCatalog>, LiveSiteConfig)>,
    /// Only these repositories are searched (an index server of several).
    owned: Option<Ownership>,
    /// Searches go to these index servers instead (a frontend in front of several).
    remote: Option<Arc<Vec<RemoteShard>>>,
    permits: Arc<Semaphore>,
    /// Threads a search of the indexes uses: one per core (asking the system each time costs
    /// several reads of control-group files).
    workers: usize,
    max_file_size: u64,
    repos: Arc<RepoCache>,
    current_indexes: Arc<CurrentIndexes>,
}

/// How long a listing of repositories serves searches before it is read again: a repository
/// cloned or updated since shows up in searches at most this late.
const REPO_LIST_TTL: Duration = Duration::from_millis(500);

/// The repository list, read from the store at most every `REPO_LIST_TTL` rather than per search.
#[derive(Default)]
struct RepoCache {
    list: tokio::sync::Mutex<Option<(Instant, Arc<Vec<Repo>>)>>,
}

impl RepoCache {
    async fn get(&self, store: &Store) -> Result<Arc<Vec<Repo>>, quarry_store::StoreError> {
        let mut cached = self.list.lock().await;
        if let Some((read_at, repos)) = cached.as_ref()
            && read_at.elapsed() < REPO_LIST_TTL
        {
            return Ok(repos.clone());
        }
        let repos = Arc::new(store.list_repos(&RepoFilter::default()).await?);
        *cached = Some((Instant::now(), repos.clone()));
        Ok(repos)
    }
}

/// The index of each repository of a listing that is current (at the repository's head), by the
/// repository's place in the listing; worked out again only when the listing or the catalog
/// changes. Looking up every repository's index for each search cost it about 0.2 ms of cache
/// misses over 600 repositories.
#[derive(Default)]
struct CurrentIndexes {
    known: std::sync::Mutex<Option<KnownIndexes>>,
}

type CurrentList = Arc<Vec<Option<Arc<index::RepoIndex>>>>;

/// The current indexes of a listing, as of a generation of the catalog.
struct KnownIndexes {
    listing: Arc<Vec<Repo>>,
    generation: u64,
    list: CurrentList,
}

impl CurrentIndexes {
    fn of(&self, repos: &Arc<Vec<Repo>>, catalog: &IndexCatalog) -> CurrentList {
        // Read before the catalog is: a change while the list is worked out makes it stale at
        // once rather than taken for current.
        let generation = catalog.generation();
        let lock = || self.known.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = lock().as_ref()
            && Arc::ptr_eq(&known.listing, repos)
            && known.generation == generation
        {
            return known.list.clone();
        }
        // Worked out without the lock: opening indexes reads files, and searches meanwhile must
        // not wait on it.
        let list: CurrentList = Arc::new(
            repos
                .iter()
                .map(|repo| {
                    let head = repo.head_commit.as_ref()?;
                    catalog.get(repo.id).filter(|index| &index.commit == head)
                })
                .collect(),
        );
        *lock() = Some(KnownIndexes {
            listing: repos.clone(),
            generation,
            list: list.clone(),
        });
        list
    }
}

/// What a repository scan reports to the search that started it.
enum Found {
    /// Files of one repository (an index worker sends several together to wake the search
    /// less often).
    Files(Vec<Prepared>),
    Finished(ScanStats),
    Problem {
        reason: &'static str,
        message: String,
    },
    /// The repository's index was not at its head: it was searched from git instead.
    Unindexed(String),
}

/// What every repository scan of a basic query needs to know.
struct Scan {
    query: BasicQuery,
    /// What the index is asked for the query's pattern, worked out once for every shard.
    candidates: index::candidates::CandidatePlan,
    select: Option<Select>,
    context_lines: usize,
}

/// A repository at one commit.
struct Target {
    repo_id: i64,
    repo: String,
    commit: String,
    branch: Option<String>,
}

impl Searcher {
    pub fn new(store: Store, git: Arc<dyn GitService>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Searcher {
            store,
            git,
            index: None,
            owned: None,
            remote: None,
            permits: Arc::new(Semaphore::new(cores * 2)),
            workers: cores,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            repos: Arc::new(RepoCache::default()),
            current_indexes: Arc::default(),
        }
    }

    /// Searches default branches through these indexes when they are current and
    /// `search.index.enabled` is not false.
    pub fn with_index(mut self, catalog: Arc<IndexCatalog>, config: LiveSiteConfig) -> Self {
        self.index = Some((catalog, config));
        self
    }

    /// Files larger than this are searched by path only.
    pub fn with_max_file_size(mut self, bytes: u64) -> Self {
        self.max_file_size = bytes;
        self
    }

    /// Searches only the repositories this index server owns.
    pub fn owning(mut self, ownership: Ownership) -> Self {
        self.owned = Some(ownership);
        self
    }

    /// Sends every search to these index servers and merges their results.
    pub fn fanning_out(mut self, shards: Vec<RemoteShard>) -> Self {
        self.remote = Some(Arc::new(shards));
        self
    }

    /// How a repository's index stands, as far as this process knows.
    pub fn index_state(&self, repo_id: i64, head: Option<&str>) -> IndexState {
        if self.remote.is_some() {
            return IndexState::OnIndexServers;
        }
        match &self.index {
            Some((catalog, config)) if config.current().search_index_enabled() => {
                match catalog.get(repo_id) {
                    Some(index) if Some(index.commit.as_str()) == head => IndexState::Current,
                    Some(_) => IndexState::Outdated,
                    None => IndexState::NotIndexed,
                }
            }
            _ => IndexState::Disabled,
        }
    }

    /// Starts a search and returns its events. The search stops when the receiver is dropped.
    pub fn search(
        &self,
        query: &str,
        options: SearchOptions,
    ) -> Result<mpsc::Receiver<SearchEvent>, ParseError> {
        let plan = plan(query, options.pattern_type)?;
        let (events, receiver) = mpsc::channel(4);
        match self.remote.clone() {
            Some(shards) if plan.unsupported.is_none() => {
                tokio::spawn(fan_out(shards, plan, query.to_string(), options, events));
            }
            _ => {
                tokio::spawn(self.clone().run(plan, options, events));
            }
        }
        Ok(receiver)
    }

    async fn run(self, plan: Plan, options: SearchOptions, events: mpsc::Sender<SearchEvent>) {
        let viewer = options.viewer;
        let mut results = Results::new(&plan);
        if let Some(message) = &plan.unsupported {
            let _ = events
                .send(SearchEvent::Alert(Alert {
                    title: "Not supported yet".into(),
                    description: message.clone(),
                    kind: "unsupported".into(),
                    proposed_queries: Vec::new(),
                }))
                .await;
            results.finish(&events).await;
            return;
        }
        let listed = async {
            let repos = self.repos.get(&self.store).await?;
            let hidden = self.store.hidden_repo_ids(viewer).await?;
            Ok::<_, quarry_store::StoreError>((repos, hidden))
        };
        let (repos, hidden) = match listed.await {
            Ok(listed) => listed,
            Err(e) => {
                let _ = events
                    .send(SearchEvent::Error(ErrorMessage {
                        message: format!("cannot list repositories: {e}"),
                    }))
                    .await;
                results.finish(&events).await;
                return;
            }
        };
        results.full_scan = plan.result_type != ResultType::Repo
            && plan.basics.iter().any(|b| {
                b.pattern
                    .as_ref()
                    .is_some_and(|p| !crate::index::candidates::narrows(p))
            });
        let cancel = CancellationToken::new();
        let _stop_scans = cancel.clone().drop_guard();
        let (found_tx, mut found_rx) = mpsc::channel::<Found>(FOUND_QUEUE);
        for basic in &plan.basics {
            let scan = Arc::new(Scan {
                query: basic.clone(),
                candidates: index::candidates::CandidatePlan::new(
                    basic.pattern.as_ref(),
                    plan.case_sensitive,
                ),
                select: plan.select,
                context_lines: options.context_lines,
            });
            let candidates = repos.iter().enumerate().filter(|(_, r)| {
                !hidden.contains(&r.id)
                    && self.owned.as_ref().is_none_or(|o| o.owns(&r.name))
                    && basic.scopes.repo_matches(&r.name)
                    && plan.fork != Tristate::Only
                    && plan.archived != Tristate::Only
            });
            let repo_search = plan.result_type == ResultType::Repo
                || (basic.pattern.is_none()
                    && !basic.scopes.has_file_filters()
                    && basic.scopes.revisions.is_empty());
            // Default branches whose index is current are searched from the index; the rest
            // (other revisions, indexes not yet current) from git.
            let catalog = match &self.index {
                Some((catalog, config))
                    if config.current().search_index_enabled()
                        && basic.scopes.revisions.is_empty() =>
                {
                    Some(catalog)
                }
                _ => None,
            };
            let current_indexes = catalog.map(|c| self.current_indexes.of(&repos, c));
            let mut indexed = Vec::new();
            for (listed, repo) in candidates {
                if repo_search {
                    results.repo_name_match(repo, basic);
                    continue;
                }
                results.repositories.insert(repo.id);
                if repo.clone_status != CloneStatus::Cloned {
                    results.unavailable(repo);
                    continue;
                }
                if let Some(index) = current_indexes.as_ref().and_then(|c| c[listed].as_ref()) {
                    indexed.push((listed, index.clone()));
                    continue;
                }
                let revisions: Vec<Option<String>> = if basic.scopes.revisions.is_empty() {
                    vec![None]
                } else {
                    basic.scopes.revisions.iter().cloned().map(Some).collect()
                };
                for revision in revisions {
                    tokio::spawn(self.clone().scan_repo(
                        repo.clone(),
                        revision,
                        scan.clone(),
                        cancel.clone(),
                        found_tx.clone(),
                    ));
                }
            }
            if !indexed.is_empty() {
                let shards = indexed
                    .into_iter()
                    .flat_map(|(listed, index)| {
                        (0..index.shards.len()).map(move |shard| (listed, index.clone(), shard))
                    })
                    .collect();
                let work = IndexWork {
                    repos: repos.clone(),
                    shards,
                };
                self.scan_indexes(work, scan.clone(), &cancel, &found_tx);
            }
        }
        drop(found_tx);
        let mut pace = Pace::new(plan.timeout);
        while !results.limit_reached() {
            let found = match pace.next(&mut results, &events, &mut found_rx).await {
                Step::Stop => return,
                Step::TimedOut => break,
                Step::Ticked => continue,
                Step::Message(None) => break,
                Step::Message(Some(found)) => found,
            };
            match found {
                Found::Files(files) => {
                    for prepared in files {
                        results.file(prepared);
                    }
                    if results.batch_matches >= MAX_BATCH && !results.flush(&events).await {
                        return;
                    }
                }
                Found::Finished(stats) => results.stats(&stats),
                Found::Problem { reason, message } => results.problem(reason, message),
                Found::Unindexed(repo) => results.unindexed.push(repo),
            }
        }
        cancel.cancel();
        results.finish(&events).await;
    }

    async fn scan_repo(
        self,
        repo: Repo,
        revision: Option<String>,
        scan: Arc<Scan>,
        cancel: CancellationToken,
        found: mpsc::Sender<Found>,
    ) {
        let _permit = tokio::select! {
            permit = self.permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = cancel.cancelled() => return,
        };
        let commit = match &revision {
            None => match &repo.head_commit {
                Some(commit) => commit.clone(),
                // An empty repository has nothing to search.
                None => return,
            },
            Some(rev) => match self.git.resolve_revision(&repo.name, rev).await {
                Ok(commit) => commit,
                Err(e) => return report(&found, "revision-missing", &repo.name, e).await,
            },
        };
        let target = Arc::new(Target {
            repo_id: repo.id,
            repo: repo.name.clone(),
            commit: commit.clone(),
            branch: revision.clone(),
        });
        let sender = found.clone();
        let stop = cancel.clone();
        let scan_target = target.clone();
        let (select, context_lines) = (scan.select, scan.context_lines);
        let emit = move |file, text: &[u8]| {
            let prepared = prepare(&scan_target, file, text, select, context_lines);
            sender.blocking_send(Found::Files(vec![prepared])).is_ok()
        };
        // Only default branches whose index is not current come here with an index enabled.
        if let (Some((_, config)), None) = (&self.index, &revision)
            && config.current().search_index_enabled()
        {
            let _ = found.send(Found::Unindexed(repo.name.clone())).await;
        }
        let stream = match self.git.archive(&repo.name, &commit).await {
            Ok(stream) => stream,
            Err(e) => return report(&found, "repository-missing", &repo.name, e).await,
        };
        let reader = SyncIoBridge::new(StreamReader::new(stream));
        let max_file_size = self.max_file_size;
        let scanned = tokio::task::spawn_blocking(move || {
            archive::scan(
                reader,
                &scan.query,
                max_file_size,
                &|| stop.is_cancelled(),
                &mut { emit },
            )
            .map_err(|e| e.to_string())
        })
        .await;
        let report = match scanned {
            Ok(Ok(stats)) => Found::Finished(stats),
            Ok(Err(e)) if !cancel.is_cancelled() => Found::Problem {
                reason: "repository-missing",
                message: format!("{}: {e}", target.repo),
            },
            Ok(Err(_)) => return,
            Err(e) => Found::Problem {
                reason: "repository-missing",
                message: format!("{}: search stopped: {e}", target.repo),
            },
        };
        let _ = found.send(report).await;
    }

    /// Searches current indexes on a few blocking threads that take shards in turn, so a query
    /// over many small repositories costs one thread hand-off per thread rather than one per
    /// repository, and a large repository's shards are spread over the threads too. Each shard
    /// is searched under a permit, so concurrent searches still take turns.
    fn scan_indexes(
        &self,
        work: IndexWork,
        scan: Arc<Scan>,
        cancel: &CancellationToken,
        found: &mpsc::Sender<Found>,
    ) {
        let work = Arc::new(work);
        let cursor = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..self.workers.min(work.shards.len()) {
            let (work, cursor, scan) = (work.clone(), cursor.clone(), scan.clone());
            let (cancel, found, permits) = (cancel.clone(), found.clone(), self.permits.clone());
            let runtime = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || {
                search_indexes(&work, &cursor, &scan, &cancel, &found, &|| {
                    permits.clone().try_acquire_owned().ok().or_else(|| {
                        runtime.block_on(async {
                            tokio::select! {
                                permit = permits.clone().acquire_owned() => permit.ok(),
                                _ = cancel.cancelled() => None,
                            }
                        })
                    })
                })
            });
        }
    }
}

/// The current indexes a basic query searches, shard by shard.
struct IndexWork {
    /// The repository listing the indexes' repositories are in.
    repos: Arc<Vec<Repo>>,
    /// Every shard to search: its repository's place in `repos`, the repository's index, and
    /// the shard's number in it.
    shards: Vec<(usize, Arc<index::RepoIndex>, usize)>,
}

/// Files an index worker has found and not yet sent to the search.
#[derive(Default)]
struct HeldFiles {
    files: Vec<Prepared>,
    /// When the first of `files` was found.
    since: Option<Instant>,
    sent_any: bool,
}

/// Takes shards from `work` in turn and searches each one.
fn search_indexes(
    work: &IndexWork,
    cursor: &std::sync::atomic::AtomicUsize,
    scan: &Scan,
    cancel: &CancellationToken,
    found: &mpsc::Sender<Found>,
    permit: &dyn Fn() -> Option<tokio::sync::OwnedSemaphorePermit>,
) {
    use std::sync::atomic::Ordering;
    // Statistics and files go to the search in batches: a message per repository would wake it
    // hundreds of times for a query that finds little.
    let mut finished = ScanStats::default();
    let mut unsent = false;
    let mut reported = Instant::now();
    let held = std::sync::Mutex::new(HeldFiles::default());
    // Sends the files held if the first of them was found at least `older_than` ago, or if this
    // worker has sent none yet (the first results go out at once).
    let send_held = |older_than: Duration| {
        let files = {
            let mut held = held.lock().unwrap_or_else(|e| e.into_inner());
            match held.since {
                Some(first) if first.elapsed() >= older_than || !held.sent_any => {
                    held.since = None;
                    held.sent_any = true;
                    std::mem::take(&mut held.files)
                }
                _ => return true,
            }
        };
        found.blocking_send(Found::Files(files)).is_ok()
    };
    loop {
        let Some(_permit) = permit() else {
            return;
        };
        let next = cursor.fetch_add(1, Ordering::Relaxed);
        let Some((listed, repo_index, shard)) = work.shards.get(next) else {
            if send_held(Duration::ZERO) && unsent {
                let _ = found.blocking_send(Found::Finished(finished));
            }
            return;
        };
        if cancel.is_cancelled() {
            return;
        }
        let repo = &work.repos[*listed];
        let (shard, tombstones) = &repo_index.shards[*shard];
        // Most shards find nothing: their repository's names are copied only for a match.
        let target = std::sync::OnceLock::new();
        let target = || {
            target.get_or_init(|| Target {
                repo_id: repo.id,
                repo: repo.name.clone(),
                commit: repo_index.commit.clone(),
                branch: None,
            })
        };
        let emit = |file, text: &[u8]| {
            let prepared = prepare(target(), file, text, scan.select, scan.context_lines);
            let full = {
                let mut held = held.lock().unwrap_or_else(|e| e.into_inner());
                held.files.push(prepared);
                held.since.get_or_insert_with(Instant::now);
                held.files.len() >= FILES_BATCH
            };
            !full || send_held(Duration::ZERO)
        };
        let searched = index::search(
            shard,
            tombstones,
            &scan.query,
            &scan.candidates,
            scan.context_lines > 0,
            &|| cancel.is_cancelled(),
            &emit,
        );
        if !send_held(FILES_HOLD) {
            return;
        }
        let report = match searched {
            Ok(stats) => {
                finished.merge(&stats);
                unsent = true;
                if reported.elapsed() < STATS_INTERVAL {
                    continue;
                }
                unsent = false;
                reported = Instant::now();
                Found::Finished(std::mem::take(&mut finished))
            }
            Err(_) if cancel.is_cancelled() => return,
            Err(e) => Found::Problem {
                reason: "repository-missing",
                message: format!("{}: {e}", repo.name),
            },
        };
        if found.blocking_send(report).is_err() {
            return;
        }
    }
}

/// Tells the search that a repository could not be searched, and why.
async fn report(
    found: &mpsc::Sender<Found>,
    reason: &'static str,
    repo: &str,
    error: impl std::fmt::Display,
) {
    let message = format!("{repo}: {error}");
    let _ = found.send(Found::Problem { reason, message }).await;
}

fn location(text: &[u8], base_offset: usize, line: usize, at: usize) -> Location {
    let before = &text[..at.min(text.len())];
    // Columns count characters; in ASCII (most code) they are bytes.
    let column = if before.is_ascii() {
        before.len()
    } else {
        String::from_utf8_lossy(before).chars().count()
    };
    Location {
        offset: base_offset + at,
        line,
        column,
    }
}

fn ranges_in(
    text: &[u8],
    base_offset: usize,
    line: usize,
    ranges: &[(usize, usize)],
) -> Vec<Range> {
    ranges
        .iter()
        .map(|&(s, e)| Range {
            start: location(text, base_offset, line, s),
            end: location(text, base_offset, line, e),
        })
        .collect()
}

/// The chunks of a file's matching lines: each line alone, or with `context` lines around it,
/// chunks that touch or overlap merged into one. Ranges stay where they are in the file.
fn chunks(lines: Vec<LineMatch>, text: &[u8], context: usize) -> Vec<ChunkMatch> {
    let lossy = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let mut chunks: Vec<ChunkMatch> = Vec::with_capacity(lines.len());
    // Where the last chunk ends: its byte offset (before the line break) and its last line.
    let mut last: Option<(usize, usize)> = None;
    for line in lines {
        let ranges = ranges_in(&line.text, line.offset, line.line, &line.ranges);
        let (mut start, mut first_line) = (line.offset, line.line);
        let (mut end, mut last_line) = (line.offset + line.text.len(), line.line);
        let with_context = context > 0 && end <= text.len();
        if with_context {
            for _ in 0..context {
                if start == 0 {
                    break;
                }
                start = text[..start - 1]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |p| p + 1);
                first_line -= 1;
            }
            for _ in 0..context {
                if end + 1 >= text.len() {
                    break;
                }
                end = text[end + 1..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(text.len(), |p| end + 1 + p);
                last_line += 1;
            }
        }
        match (last, chunks.last_mut()) {
            (Some((previous_end, previous_line)), Some(chunk))
                if with_context && first_line <= previous_line + 1 =>
            {
                if end > previous_end {
                    chunk.content.push_str(&lossy(&text[previous_end..end]));
                }
                chunk.ranges.extend(ranges);
                last = Some((end.max(previous_end), last_line.max(previous_line)));
            }
            _ => {
                let content = if with_context {
                    lossy(&text[start..end])
                } else {
                    // The line is not needed again: valid UTF-8 becomes the content uncopied.
                    String::from_utf8(line.text).unwrap_or_else(|e| lossy(e.as_bytes()))
                };
                chunks.push(ChunkMatch {
                    content,
                    content_start: Location {
                        offset: start,
                        line: first_line,
                        column: 0,
                    },
                    ranges,
                });
                last = Some((end, last_line));
            }
        }
    }
    chunks
}

/// A result ready to send, and the key that makes it a duplicate.
struct Prepared {
    key: String,
    rank: i64,
    found: Match,
}

/// A file match turned into a result, ranked, where it was found (in the scanning thread, so the
/// work is spread over cores).
fn prepare(
    target: &Target,
    file: FileMatch,
    text: &[u8],
    select: Option<Select>,
    context_lines: usize,
) -> Prepared {
    let key = match select {
        Some(Select::Repo) => format!("repo\0{}", target.repo),
        _ => format!("file\0{}\0{}\0{}", target.repo, target.commit, file.path),
    };
    let rank = score(&file);
    let language = Language::of_path(&file.path).map(|l| l.name().to_string());
    let branches: Vec<String> = target.branch.iter().cloned().collect();
    let path_matches = ranges_in(file.path.as_bytes(), 0, 0, &file.path_ranges);
    let found = match select {
        Some(Select::Repo) => Match::Repo {
            repository: target.repo.clone(),
            repository_id: target.repo_id,
            repository_matches: Vec::new(),
        },
        Some(Select::File) => Match::Path {
            repository: target.repo.clone(),
            repository_id: target.repo_id,
            commit: target.commit.clone(),
            branches,
            path: file.path,
            language,
            path_matches,
        },
        _ if file.lines.is_empty() => Match::Path {
            repository: target.repo.clone(),
            repository_id: target.repo_id,
            commit: target.commit.clone(),
            branches,
            path: file.path,
            language,
            path_matches,
        },
        _ => Match::Content {
            repository: target.repo.clone(),
            repository_id: target.repo_id,
            commit: target.commit.clone(),
            branches,
            chunk_matches: chunks(file.lines, text, context_lines),
            path: file.path,
            language,
            path_matches,
        },
    };
    Prepared { key, rank, found }
}

/// Sends a search to every index server and merges their streams: matches in the order they
/// arrive (each server ranks its own), skipped items and repository counts summed, a server
/// that cannot be reached reported in `progress.skipped` while the others still answer.
async fn fan_out(
    shards: Arc<Vec<RemoteShard>>,
    plan: Plan,
    query: String,
    options: SearchOptions,
    events: mpsc::Sender<SearchEvent>,
) {
    let mut results = Results::new(&plan);
    let cancel = CancellationToken::new();
    let _stop_shards = cancel.clone().drop_guard();
    let (tx, mut rx) = mpsc::channel(FOUND_QUEUE);
    for (i, shard) in shards.iter().enumerate() {
        tokio::spawn(
            shard
                .clone()
                .stream(i, query.clone(), options, tx.clone(), cancel.clone()),
        );
    }
    drop(tx);
    // Each index server honours the timeout itself; this bounds a server that stops answering.
    let mut pace = Pace::new(plan.timeout + Duration::from_secs(5));
    let mut arrival = 0i64;
    let mut alerts = HashSet::new();
    let mut finished = 0;
    while finished < shards.len() && !results.limit_reached() {
        let (i, event) = match pace.next(&mut results, &events, &mut rx).await {
            Step::Stop => return,
            Step::TimedOut | Step::Message(None) => break,
            Step::Ticked => continue,
            Step::Message(Some(message)) => message,
        };
        let address = &shards[i].address;
        match event {
            Ok(SearchEvent::Matches(matches)) => {
                for found in matches {
                    // Decreasing ranks keep the order each server chose.
                    arrival -= 1;
                    results.push(arrival, found);
                }
                if results.batch_matches >= MAX_BATCH && !results.flush(&events).await {
                    return;
                }
            }
            Ok(SearchEvent::Progress(p)) if p.done => {
                results.remote_repositories += p.repositories_count;
                results.timed_out |= p.skipped.iter().any(|s| s.reason == "shard-timeout");
                for skipped in p.skipped {
                    if !results.remote_skipped.contains(&skipped) {
                        results.remote_skipped.push(skipped);
                    }
                }
            }
            Ok(SearchEvent::Alert(alert)) => {
                if alerts.insert(alert.title.clone())
                    && events.send(SearchEvent::Alert(alert)).await.is_err()
                {
                    return;
                }
            }
            Ok(SearchEvent::Error(e)) => {
                results.problem("shard-error", format!("{address}: {}", e.message))
            }
            Ok(SearchEvent::Done) => finished += 1,
            Ok(_) => {}
            Err(reason) => {
                finished += 1;
                results.problem("shard-unavailable", format!("{address}: {reason}"));
            }
        }
    }
    cancel.cancel();
    results.finish(&events).await;
}

/// What woke a search's loop.
enum Step<T> {
    /// The consumer went away.
    Stop,
    TimedOut,
    /// Pending results were flushed or progress was reported.
    Ticked,
    /// From the producers; `None` once they are all done.
    Message(Option<T>),
}

/// The rhythm shared by every search loop: a deadline, periodic flushes of held-back results and
/// periodic progress, between messages from the producers.
struct Pace {
    deadline: tokio::time::Instant,
    flush: tokio::time::Interval,
    progress: tokio::time::Interval,
}

impl Pace {
    fn new(timeout: Duration) -> Self {
        Pace {
            deadline: tokio::time::Instant::now() + timeout,
            flush: tokio::time::interval(FLUSH_INTERVAL),
            progress: tokio::time::interval(PROGRESS_INTERVAL),
        }
    }

    async fn next<T>(
        &mut self,
        results: &mut Results,
        events: &mpsc::Sender<SearchEvent>,
        messages: &mut mpsc::Receiver<T>,
    ) -> Step<T> {
        tokio::select! {
            _ = events.closed() => Step::Stop,
            _ = tokio::time::sleep_until(self.deadline) => {
                results.timed_out = true;
                Step::TimedOut
            }
            _ = self.flush.tick() => {
                if results.flush(events).await { Step::Ticked } else { Step::Stop }
            }
            _ = self.progress.tick() => {
                let sent = events.send(SearchEvent::Progress(results.progress(false))).await;
                if sent.is_ok() { Step::Ticked } else { Step::Stop }
            }
            message = messages.recv() => Step::Message(message),
        }
    }
}

/// The state of one search's results.
struct Results {
    started: Instant,
    limit: Option<usize>,
    match_count: usize,
    timed_out: bool,
    /// The patterns gave the index nothing to narrow the search with.
    full_scan: bool,
    batch: Vec<(i64, Match)>,
    /// Matches in `batch`.
    batch_matches: usize,
    seen: HashSet<String>,
    repositories: HashSet<i64>,
    repo_facets: BTreeMap<String, usize>,
    language_facets: BTreeMap<String, usize>,
    /// Matches by the top directory of their path.
    path_facets: BTreeMap<String, usize>,
    cloning: Vec<String>,
    missing: Vec<String>,
    unindexed: Vec<String>,
    /// What index servers reported skipping, and how many repositories they searched.
    remote_skipped: Vec<Skipped>,
    remote_repositories: usize,
    problems: BTreeMap<&'static str, Vec<String>>,
    binary: SkippedFiles,
    too_large: SkippedFiles,
}

impl Results {
    fn new(plan: &Plan) -> Self {
        Results {
            started: Instant::now(),
            limit: plan.count,
            match_count: 0,
            timed_out: false,
            full_scan: false,
            batch: Vec::new(),
            batch_matches: 0,
            seen: HashSet::new(),
            repositories: HashSet::new(),
            repo_facets: BTreeMap::new(),
            language_facets: BTreeMap::new(),
            path_facets: BTreeMap::new(),
            cloning: Vec::new(),
            missing: Vec::new(),
            unindexed: Vec::new(),
            remote_skipped: Vec::new(),
            remote_repositories: 0,
            problems: BTreeMap::new(),
            binary: SkippedFiles::default(),
            too_large: SkippedFiles::default(),
        }
    }

    fn limit_reached(&self) -> bool {
        self.limit.is_some_and(|limit| self.match_count >= limit)
    }

    fn push(&mut self, rank: i64, mut found: Match) {
        if self.limit_reached() {
            return;
        }
        if let Some(limit) = self.limit {
            found.truncate(limit - self.match_count);
        }
        let count = found.count();
        self.match_count += count;
        self.batch_matches += count;
        *self
            .repo_facets
            .entry(found.repository().to_string())
            .or_default() += count;
        if let Some(language) = found.language() {
            *self
                .language_facets
                .entry(language.to_string())
                .or_default() += count;
        }
        if let Some((directory, _)) = found.path().and_then(|p| p.split_once('/')) {
            *self.path_facets.entry(directory.to_string()).or_default() += count;
        }
        self.batch.push((rank, found));
    }

    fn repo_name_match(&mut self, repo: &Repo, basic: &BasicQuery) {
        let Some(found) = match_file(basic.pattern.as_ref(), &repo.name, b"") else {
            return;
        };
        if !self.seen.insert(format!("repo\0{}", repo.name)) {
            return;
        }
        self.repositories.insert(repo.id);
        let ranges = ranges_in(repo.name.as_bytes(), 0, 0, &found.path_ranges);
        self.push(
            0,
            Match::Repo {
                repository: repo.name.clone(),
                repository_id: repo.id,
                repository_matches: ranges,
            },
        );
    }

    fn file(&mut self, prepared: Prepared) {
        if self.seen.insert(prepared.key) {
            self.push(prepared.rank, prepared.found);
        }
    }

    fn stats(&mut self, stats: &ScanStats) {
        self.binary.merge(&stats.binary);
        self.too_large.merge(&stats.too_large);
    }

    fn unavailable(&mut self, repo: &Repo) {
        match repo.clone_status {
            CloneStatus::NotCloned | CloneStatus::Cloning => self.cloning.push(repo.name.clone()),
            _ => self.missing.push(repo.name.clone()),
        }
    }

    fn problem(&mut self, reason: &'static str, message: String) {
        self.problems.entry(reason).or_default().push(message);
    }

    /// Sends what has accumulated, best first. Returns false when the consumer is gone.
    async fn flush(&mut self, events: &mpsc::Sender<SearchEvent>) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let mut batch = std::mem::take(&mut self.batch);
        self.batch_matches = 0;
        batch.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then_with(|| a.1.repository().cmp(b.1.repository()))
                .then_with(|| a.1.path().cmp(&b.1.path()))
        });
        let matches = batch.into_iter().map(|(_, m)| m).collect();
        events.send(SearchEvent::Matches(matches)).await.is_ok()
    }

    fn skipped(&self) -> Vec<Skipped> {
        let mut skipped: Vec<Skipped> = self
            .remote_skipped
            .iter()
            .filter(|s| !matches!(s.reason.as_str(), "document-match-limit" | "shard-timeout"))
            .cloned()
            .collect();
        let list = |names: &[String]| {
            names
                .iter()
                .take(10)
                .map(|n| format!("- `{n}`"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        for (reason, names, title, intro, severity) in [
            (
                "repository-cloning",
                &self.cloning,
                "cloning",
                "Repositories still being cloned were not searched",
                "info",
            ),
            (
                "repository-missing",
                &self.missing,
                "missing",
                "Repositories that could not be cloned were not searched",
                "warn",
            ),
            (
                "repository-unindexed",
                &self.unindexed,
                "searched without index",
                "These repositories' indexes are not up to date yet; they were searched straight from git",
                "info",
            ),
        ] {
            if !names.is_empty() {
                skipped.push(Skipped {
                    reason: reason.into(),
                    title: format!("{} {title}", names.len()),
                    message: format!("{intro}:\n{}", list(names)),
                    severity: severity.into(),
                    suggested: None,
                });
            }
        }
        for (reason, messages) in &self.problems {
            skipped.push(Skipped {
                reason: (*reason).into(),
                title: format!("{} not searched", messages.len()),
                message: list(messages),
                severity: "warn".into(),
                suggested: None,
            });
        }
        for (reason, what, files) in [
            ("excluded-binary", "binary", &self.binary),
            ("excluded-large", "too large", &self.too_large),
        ] {
            if files.count > 0 {
                skipped.push(Skipped {
                    reason: reason.into(),
                    title: format!("{} {what} files", files.count),
                    message: format!(
                        "Contents of {what} files were not searched, for example:\n{}",
                        list(&files.examples)
                    ),
                    severity: "info".into(),
                    suggested: None,
                });
            }
        }
        if self.full_scan {
            skipped.push(Skipped {
                reason: "unindexed-pattern".into(),
                title: "every file scanned".into(),
                message: "The pattern has no literal text of three or more characters for the index to narrow the search with, so every file was read.".into(),
                severity: "info".into(),
                suggested: None,
            });
        }
        if self.limit_reached() {
            skipped.push(Skipped {
                reason: "document-match-limit".into(),
                title: "result limit hit".into(),
                message: format!("The search stopped after {} results.", self.match_count),
                severity: "info".into(),
                suggested: Some(SuggestedQuery {
                    title: "search for all results".into(),
                    query_expression: "count:all".into(),
                }),
            });
        }
        if self.timed_out {
            skipped.push(Skipped {
                reason: "shard-timeout".into(),
                title: "timed out".into(),
                message: "The search ran out of time; results may be incomplete.".into(),
                severity: "warn".into(),
                suggested: Some(SuggestedQuery {
                    title: "allow more time".into(),
                    query_expression: "timeout:1m".into(),
                }),
            });
        }
        skipped
    }

    fn progress(&self, done: bool) -> Progress {
        Progress {
            done,
            repositories_count: self.repositories.len() + self.remote_repositories,
            match_count: self.match_count,
            duration_ms: self.started.elapsed().as_millis() as u64,
            skipped: self.skipped(),
        }
    }

    /// The sidebar's filters: repositories, languages and top directories, the most matched
    /// first.
    fn facets(&self) -> Vec<Facet> {
        let limit_hit = self.limit_reached();
        let top = |counts: &BTreeMap<String, usize>| {
            let mut sorted: Vec<(String, usize)> =
                counts.iter().map(|(k, v)| (k.clone(), *v)).collect();
            sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            sorted.truncate(MAX_FACETS);
            sorted
        };
        let facet = |kind: &str, value: String, label: String, count: usize| Facet {
            value,
            label,
            count,
            limit_hit,
            kind: kind.into(),
        };
        let repos = top(&self.repo_facets).into_iter().map(|(name, count)| {
            facet(
                "repo",
                format!("repo:^{}$", regex::escape(&name)),
                name,
                count,
            )
        });
        let languages = top(&self.language_facets).into_iter().map(|(name, count)| {
            let value = format!("lang:{}", name.to_lowercase().replace(' ', "-"));
            facet("lang", value, name, count)
        });
        let paths = top(&self.path_facets)
            .into_iter()
            .map(|(directory, count)| {
                let value = format!("file:^{}/", regex::escape(&directory));
                facet("file", value, format!("{directory}/"), count)
            });
        repos.chain(languages).chain(paths).collect()
    }

    async fn finish(&mut self, events: &mpsc::Sender<SearchEvent>) {
        if !self.flush(events).await {
            return;
        }
        let _ = events.send(SearchEvent::Filters(self.facets())).await;
        let _ = events
            .send(SearchEvent::Progress(self.progress(true)))
            .await;
        let _ = events.send(SearchEvent::Done).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, number: usize, needle: &str) -> LineMatch {
        let offset = text.split_inclusive('\n').take(number).map(str::len).sum();
        let body = text[offset..].split('\n').next().unwrap_or("");
        let at = body.find(needle).expect("needle on the line");
        LineMatch {
            line: number,
            offset,
            text: body.as_bytes().to_vec(),
            ranges: vec![(at, at + needle.len())],
        }
    }

    #[test]
    fn context_lines_surround_matches_and_touching_chunks_merge() {
        let text = "a\nb x\nc\nd\ne\nf\ng x\nh\n";
        let lines = [line(text, 1, "x"), line(text, 6, "x")];
        let alone = chunks(lines.to_vec(), text.as_bytes(), 0);
        assert_eq!(alone.len(), 2);
        assert_eq!(alone[0].content, "b x");
        let one = chunks(lines.to_vec(), text.as_bytes(), 1);
        assert_eq!(
            one.iter().map(|c| c.content.as_str()).collect::<Vec<_>>(),
            ["a\nb x\nc", "f\ng x\nh"]
        );
        assert_eq!(one[0].content_start.line, 0);
        assert_eq!(one[1].content_start.line, 5);
        assert_eq!(one[1].ranges[0].start.line, 6, "ranges stay where they are");
        let two = chunks(lines.to_vec(), text.as_bytes(), 2);
        assert_eq!(two.len(), 1, "chunks that touch merge");
        assert_eq!(two[0].content, "a\nb x\nc\nd\ne\nf\ng x\nh");
        assert_eq!(two[0].ranges.len(), 2);
        // At the file's ends, context stops.
        let edge = chunks(vec![line(text, 7, "h")], text.as_bytes(), 3);
        assert_eq!(edge[0].content, "e\nf\ng x\nh");
    }
}
