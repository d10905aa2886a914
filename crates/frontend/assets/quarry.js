// Quarry's web app: progressive enhancement of the server-rendered pages. Without this script
// every page still reads and every form still works; with it, searches stream, links inside the
// app swap the main part of the page without a full reload, queries are highlighted as they are
// typed, and line ranges can be selected in files.

const root = document.documentElement;
root.classList.add('js');

const $ = (selector, scope = document) => scope.querySelector(selector);
const $$ = (selector, scope = document) => [...scope.querySelectorAll(selector)];

const escapeHtml = (text) =>
  String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

const isTyping = (element) =>
  element && (element.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(element.tagName));

/** Percent-encodes a path for a URL, keeping slashes (as the server does). */
const pathUrl = (path) => path.split('/').map(encodeURIComponent).join('/').replace(/%40/g, '@');

const searchUrl = (query) => '/search?' + new URLSearchParams({ q: query }).toString();

// ---------------------------------------------------------------------------------------------
// Query highlighting

const FIELDS = new Set([
  'repo', 'r', 'file', 'f', 'path', 'lang', 'l', 'language', 'content', 'type', 'select', 'count',
  'timeout', 'case', 'patterntype', 'fork', 'archived', 'rev', 'revision',
]);

/** Splits a query into pieces with a highlighting class each (filters, operators, strings...). */
export function tokenize(query) {
  const tokens = [];
  let i = 0;
  const push = (text, cls) => tokens.push({ text, cls });
  const wordEnd = (from) => {
    let j = from;
    let depth = 0;
    while (j < query.length && !(/\s/.test(query[j]) && depth === 0)) {
      if (query[j] === '(') depth++;
      if (query[j] === ')') {
        if (depth === 0) break;
        depth--;
      }
      j++;
    }
    return j;
  };
  const quotedEnd = (from, quote) => {
    let j = from + 1;
    while (j < query.length && query[j] !== quote) j += query[j] === '\\' ? 2 : 1;
    return Math.min(j + 1, query.length);
  };
  while (i < query.length) {
    const rest = query.slice(i);
    const space = rest.match(/^\s+/);
    if (space) {
      push(space[0], '');
      i += space[0].length;
      continue;
    }
    if (query[i] === '(' || query[i] === ')') {
      push(query[i], 'qt-paren');
      i++;
      continue;
    }
    const operator = rest.match(/^(and|or|not|AND|OR|NOT)(?=[\s()]|$)/);
    if (operator && (i === 0 || /[\s(]/.test(query[i - 1]))) {
      push(operator[0], 'qt-op');
      i += operator[0].length;
      continue;
    }
    const field = rest.match(/^(-?)([a-zA-Z]+):/);
    if (field && FIELDS.has(field[2].toLowerCase())) {
      push(field[0], field[1] ? 'qt-neg' : 'qt-field');
      i += field[0].length;
      const end = query[i] === '"' || query[i] === "'" ? quotedEnd(i, query[i]) : wordEnd(i);
      push(query.slice(i, end), query[i] === '"' ? 'qt-str' : '');
      i = end;
      continue;
    }
    if (query[i] === '"') {
      const end = quotedEnd(i, '"');
      push(query.slice(i, end), 'qt-str');
      i = end;
      continue;
    }
    if (query[i] === '/') {
      const end = quotedEnd(i, '/');
      push(query.slice(i, end), 'qt-re');
      i = end;
      continue;
    }
    const end = Math.max(wordEnd(i), i + 1);
    push(query.slice(i, end), '');
    i = end;
  }
  return tokens;
}

function highlightQuery(field) {
  const input = $('input', field);
  const overlay = $('.query-overlay', field);
  if (!input || !overlay) return;
  overlay.innerHTML = tokenize(input.value)
    .map((t) => (t.cls ? `<span class="${t.cls}">${escapeHtml(t.text)}</span>` : escapeHtml(t.text)))
    .join('');
  overlay.scrollLeft = input.scrollLeft;
}

function initQueryFields() {
  for (const field of $$('.query-field')) {
    if (field.dataset.ready) continue;
    field.dataset.ready = '1';
    field.classList.add('highlighting');
    const input = $('input', field);
    for (const event of ['input', 'scroll', 'keyup', 'focus', 'select']) {
      input.addEventListener(event, () => highlightQuery(field));
    }
    highlightQuery(field);
  }
}

// ---------------------------------------------------------------------------------------------
// Search results, in the same markup the server renders

const CHUNKS_SHOWN = 2;
const CONTEXT_LINES = 1;

function marked(text, ranges) {
  const chars = Array.from(text);
  let out = '';
  let at = 0;
  for (const [rawStart, rawEnd] of ranges) {
    const start = Math.max(at, Math.min(rawStart, chars.length));
    const end = Math.min(rawEnd, chars.length);
    if (start > at) out += escapeHtml(chars.slice(at, start).join(''));
    if (end > start) {
      out += `<mark>${escapeHtml(chars.slice(start, end).join(''))}</mark>`;
      at = end;
    }
  }
  if (at < chars.length) out += escapeHtml(chars.slice(at).join(''));
  return out;
}

function blobUrl(match, line) {
  const revision = match.branches && match.branches.length ? '@' + pathUrl(match.branches[0]) : '';
  return `/${pathUrl(match.repository)}${revision}/-/blob/${pathUrl(match.path)}${line ? '#L' + line : ''}`;
}

const columns = (ranges) => (ranges || []).map((r) => [r.start.column, r.end.column]);

function resultHeader(match) {
  const branch = match.branches && match.branches.length ? `<span class="muted">@${escapeHtml(match.branches[0])}</span>` : '';
  const language = match.language ? ` <span class="lang">${escapeHtml(match.language)}</span>` : '';
  return `<h3><a class="repo" href="/${pathUrl(match.repository)}">${escapeHtml(match.repository)}</a>${branch} › ` +
    `<a class="file" href="${blobUrl(match)}">${marked(match.path, columns(match.pathMatches))}</a>${language}</h3>`;
}

function resultKey(match) {
  return match.type === 'repo' ? match.repository : `${match.repository}\t${match.path}`;
}

function renderResult(match) {
  const item = document.createElement('li');
  item.className = 'result';
  item.dataset.key = resultKey(match);
  if (match.type === 'repo') {
    item.innerHTML = `<h3><a class="repo" href="/${pathUrl(match.repository)}">${escapeHtml(match.repository)}</a></h3>`;
    return item;
  }
  let html = resultHeader(match);
  if (match.type === 'content') {
    const chunks = (match.chunkMatches || []).map((chunk) => '<tbody>' + chunk.content.split('\n').map((text, i) => {
      const number = chunk.contentStart.line + i;
      const ranges = (chunk.ranges || []).filter((r) => r.start.line === number).map((r) => [r.start.column, r.end.column]);
      return `<tr class="${ranges.length ? 'match' : 'context'}"><td class="line"><a href="${blobUrl(match, number + 1)}">${number + 1}</a></td>` +
        `<td class="code">${marked(text, ranges)}</td></tr>`;
    }).join('') + '</tbody>');
    const shown = chunks.slice(0, CHUNKS_SHOWN);
    const more = chunks.slice(CHUNKS_SHOWN);
    html += `<table class="chunks">${shown.join('')}</table>`;
    if (more.length) {
      html += `<details class="more"><summary>Show ${more.length} more matches</summary>` +
        `<table class="chunks">${more.join('')}</table></details>`;
    }
  }
  item.innerHTML = html;
  return item;
}

function renderFilters(aside, query, facets) {
  const kinds = [['repo', 'Repositories'], ['lang', 'Languages'], ['file', 'Paths']];
  aside.innerHTML = kinds
    .map(([kind, title]) => {
      const ofKind = facets.filter((f) => f.kind === kind);
      if (!ofKind.length) return '';
      const items = ofKind
        .map((f) => `<li><a href="${escapeHtml(searchUrl(`${query} ${f.value}`))}"><span class="label">${escapeHtml(f.label)}</span><span class="facet-count">${f.count}</span></a></li>`)
        .join('');
      return `<h2>${title}</h2><ul data-kind="${kind}">${items}</ul>`;
    })
    .join('');
}

function renderProgress(summary, progress) {
  let html = `<span class="count">${progress.matchCount} results</span> in <span class="duration">${progress.durationMs} ms</span>`;
  if (!progress.done) html += '…';
  if (progress.skipped && progress.skipped.length) {
    html += '<ul class="skipped">' + progress.skipped
      .map((s) => `<li data-reason="${escapeHtml(s.reason)}"><strong>${escapeHtml(s.title)}</strong>: ${escapeHtml(s.message)}</li>`)
      .join('') + '</ul>';
  }
  summary.innerHTML = html;
}

function queryErrorHtml(query, message) {
  const column = message.match(/at column (\d+)/);
  const caret = column ? `<pre>${escapeHtml(query)}\n${' '.repeat(Number(column[1]) - 1)}^</pre>` : '';
  return `<div id="query-error" class="query-error" role="alert">${caret}<p>${escapeHtml(message)}</p></div>`;
}

/** Reads a server-sent event stream from a fetch response, calling `onEvent(name, data)`. */
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let split;
    while ((split = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, split);
      buffer = buffer.slice(split + 2);
      let name = 'message';
      const data = [];
      for (const line of frame.split('\n')) {
        if (line.startsWith('event:')) name = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
      }
      onEvent(name, data.join('\n'));
    }
  }
}

let running = null;

/** Streams a search into the page; `resume` keeps the results the server already rendered. */
async function streamSearch(query, { resume = false } = {}) {
  if (running) running.abort();
  const controller = new AbortController();
  running = controller;
  const started = performance.now();
  window.quarrySearchTiming = { query, started, firstResult: null, done: null };
  let layout = $('.search-layout');
  $('#query-error')?.remove();
  if (!layout || !resume) {
    const fresh = document.createElement('div');
    fresh.className = 'search-layout';
    fresh.innerHTML = '<aside class="filters" aria-label="Filters"></aside><section class="search-results" aria-label="Results">' +
      '<p class="summary" role="status" aria-live="polite">Searching…</p><ul class="alerts"></ul><ol class="results"></ol></section>';
    if (layout) layout.replaceWith(fresh);
    else $('main').append(fresh);
    layout = fresh;
  }
  layout.dataset.query = query;
  layout.dataset.complete = 'false';
  const results = $('.results', layout);
  const seen = new Set($$('.result', results).map((r) => r.dataset.key));
  const params = new URLSearchParams({ q: query, cl: String(CONTEXT_LINES) });
  let response;
  try {
    response = await fetch('/.api/search/stream?' + params, { signal: controller.signal, headers: { Accept: 'text/event-stream' } });
  } catch (error) {
    if (error.name !== 'AbortError') $('.summary', layout).textContent = `Search failed: ${error.message}`;
    return;
  }
  if (!response.ok) {
    const message = (await response.text()).trim().replace(/^invalid query: /, '');
    layout.remove();
    $('.search-form')?.insertAdjacentHTML('afterend', queryErrorHtml(query, message));
    return;
  }
  try {
    await readEvents(response, (name, data) => {
      if (controller.signal.aborted) return;
      const payload = data ? JSON.parse(data) : {};
      switch (name) {
        case 'matches':
          for (const match of payload) {
            const key = resultKey(match);
            if (seen.has(key)) continue;
            seen.add(key);
            results.append(renderResult(match));
            if (window.quarrySearchTiming.firstResult === null) {
              window.quarrySearchTiming.firstResult = performance.now();
            }
          }
          break;
        case 'progress':
          renderProgress($('.summary', layout), payload);
          break;
        case 'filters':
          renderFilters($('.filters', layout), query, payload);
          break;
        case 'alert':
          $('.alerts', layout).insertAdjacentHTML('beforeend', `<li class="alert"><strong>${escapeHtml(payload.title)}</strong>: ${escapeHtml(payload.description)}</li>`);
          break;
        case 'error':
          $('.alerts', layout).insertAdjacentHTML('beforeend', `<li class="alert error">${escapeHtml(payload.message)}</li>`);
          break;
        case 'done':
          layout.dataset.complete = 'true';
          $('.more-results', layout)?.remove();
          window.quarrySearchTiming.done = performance.now();
          break;
      }
    });
  } catch (error) {
    if (error.name !== 'AbortError') $('.summary', layout).textContent = `Search failed: ${error.message}`;
  }
}

function onSearchPage() {
  return location.pathname === '/search';
}

function submitSearch(event) {
  const form = event.target.closest('form[role=search]');
  if (!form) return;
  const query = new FormData(form).get('q') || '';
  if (!String(query).trim()) return;
  event.preventDefault();
  const url = searchUrl(String(query));
  if (onSearchPage() && $('.search-form')) {
    history.pushState({}, '', url);
    const box = $('#q');
    if (box && box.value !== query) box.value = query;
    if ($('#header-q')) $('#header-q').value = query;
    for (const field of $$('.query-field')) highlightQuery(field);
    streamSearch(String(query));
  } else {
    navigate(url, true);
  }
}

function resumeSearch() {
  const layout = $('.search-layout');
  if (layout && layout.dataset.complete === 'false' && layout.dataset.query) {
    streamSearch(layout.dataset.query, { resume: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Moving through results with the arrow keys

function moveResult(step) {
  const items = $$('.results .result');
  if (!items.length) return false;
  const current = items.findIndex((item) => item.classList.contains('selected'));
  const next = Math.min(items.length - 1, Math.max(0, current < 0 ? 0 : current + step));
  items.forEach((item) => item.classList.remove('selected'));
  items[next].classList.add('selected');
  const link = $('h3 a.file', items[next]) || $('h3 a', items[next]);
  link?.focus();
  return true;
}

// ---------------------------------------------------------------------------------------------
// Line selection in files: click a line number, shift-click another for a range

let anchorLine = null;

function selectedLines() {
  const match = location.hash.match(/^#L(\d+)(?:-L?(\d+))?$/);
  if (!match) return null;
  const start = Number(match[1]);
  const end = match[2] ? Number(match[2]) : start;
  return [Math.min(start, end), Math.max(start, end)];
}

function applyLineSelection(scroll) {
  const table = $('table.lines');
  if (!table) return;
  $$('tr.selected', table).forEach((row) => row.classList.remove('selected'));
  const range = selectedLines();
  if (!range) return;
  for (let line = range[0]; line <= range[1]; line++) document.getElementById('L' + line)?.classList.add('selected');
  if (scroll) document.getElementById('L' + range[0])?.scrollIntoView({ block: 'center' });
}

function onLineClick(event) {
  const link = event.target.closest('table.lines td.line a');
  if (!link) return false;
  event.preventDefault();
  const line = Number(link.dataset.line);
  const hash = event.shiftKey && anchorLine !== null && anchorLine !== line
    ? `#L${Math.min(anchorLine, line)}-${Math.max(anchorLine, line)}`
    : `#L${line}`;
  if (!event.shiftKey) anchorLine = line;
  history.replaceState(history.state, '', location.pathname + location.search + hash);
  applyLineSelection(false);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Navigation without full reloads

function sameAppLink(link, event) {
  if (!link || event.defaultPrevented || event.button !== 0) return null;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return null;
  if (link.target || link.hasAttribute('download')) return null;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin) return null;
  if (/^\/(\.api|\.assets|-)\//.test(url.pathname) || url.pathname.includes('/-/raw/')) return null;
  if (url.pathname === location.pathname && url.search === location.search && url.hash) return null;
  return url;
}

async function navigate(href, push) {
  let response;
  try {
    response = await fetch(href, { headers: { Accept: 'text/html' } });
  } catch {
    location.href = href;
    return;
  }
  if (!(response.headers.get('content-type') || '').includes('text/html')) {
    location.href = href;
    return;
  }
  const page = new DOMParser().parseFromString(await response.text(), 'text/html');
  const main = $('main', page);
  if (!main) {
    location.href = href;
    return;
  }
  const target = new URL(response.redirected ? response.url : href, location.href);
  target.hash = new URL(href, location.href).hash;
  if (push) history.pushState({}, '', target.href);
  document.title = page.title;
  $('header')?.replaceWith($('header', page));
  $('main').replaceWith(main);
  init();
  if (target.hash) {
    applyLineSelection(true);
    if (!selectedLines()) document.getElementById(target.hash.slice(1))?.scrollIntoView();
  } else {
    window.scrollTo(0, 0);
  }
}

// ---------------------------------------------------------------------------------------------
// Wiring

function init() {
  initQueryFields();
  applyLineSelection(true);
  resumeSearch();
}

document.addEventListener('submit', submitSearch);

document.addEventListener('click', (event) => {
  if (onLineClick(event)) return;
  const url = sameAppLink(event.target.closest('a'), event);
  if (!url) return;
  event.preventDefault();
  navigate(url.href, true);
});

document.addEventListener('keydown', (event) => {
  if (event.key === '/' && !isTyping(event.target)) {
    const box = $('#q') || $('#header-q');
    if (box) {
      event.preventDefault();
      box.focus();
      box.select();
    }
    return;
  }
  const fromBox = event.target && event.target.id === 'q' && event.key === 'ArrowDown';
  if ((event.key === 'ArrowDown' || event.key === 'ArrowUp') && (fromBox || !isTyping(event.target))) {
    if (moveResult(event.key === 'ArrowDown' ? 1 : -1)) event.preventDefault();
  }
});

window.addEventListener('popstate', () => {
  if (onSearchPage() && $('.search-form')) {
    const query = new URLSearchParams(location.search).get('q') || '';
    if ($('#q')) $('#q').value = query;
    for (const field of $$('.query-field')) highlightQuery(field);
    if (query) streamSearch(query);
  } else if (selectedLines() && $('table.lines')) {
    applyLineSelection(true);
  } else {
    navigate(location.href, false);
  }
});

init();
