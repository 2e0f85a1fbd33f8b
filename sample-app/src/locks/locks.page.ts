/**
 * The live lock page: plain HTML, a little CSS and a script, no front-end build. It listens to
 * `/locks/events` (server-sent events) and redraws the table and the recent list on each message.
 * All text from the server is inserted with `textContent`, never as HTML.
 */
export const LOCKS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Locks</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d232a; }
  h1 { font-size: 20px; margin: 0 0 4px; }
  .meta { color: #5b6672; margin-bottom: 16px; }
  .live { display: inline-block; width: 8px; height: 8px; border-radius: 50%; background: #aaa; margin-right: 6px; }
  .live.on { background: #1f9d55; }
  table { border-collapse: collapse; width: 100%; margin-bottom: 24px; }
  th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #e3e7eb; }
  th { background: #f5f7f9; font-weight: 600; }
  td.num { font-variant-numeric: tabular-nums; }
  button { font: inherit; padding: 2px 10px; border: 1px solid #c0392b; color: #c0392b; background: #fff; border-radius: 4px; cursor: pointer; }
  .empty { color: #5b6672; font-style: italic; }
  ol { padding-left: 20px; }
  .kind { display: inline-block; min-width: 130px; font-weight: 600; }
  .lost, .force-released { color: #c0392b; }
  .hand-off { color: #2b6cb0; }
  .error { color: #c0392b; }
</style>
</head>
<body>
<h1>Locks</h1>
<div class="meta"><span id="live" class="live"></span><span id="status">connecting…</span></div>
<table>
  <thead><tr><th>Lock</th><th>Holder</th><th>Held for</th><th>Time left</th><th>Waiting</th><th>Fencing token</th><th id="action-head"></th></tr></thead>
  <tbody id="locks"></tbody>
</table>
<h2>Recent hand-offs and losses</h2>
<ol id="recent"></ol>
<script>
  const $ = (id) => document.getElementById(id);
  const cell = (row, text, cls) => { const td = row.insertCell(); td.textContent = text; if (cls) td.className = cls; return td; };
  const seconds = (ms) => ms < 0 ? 'never expires' : (ms / 1000).toFixed(1) + ' s';
  const heldFor = (iso) => iso ? Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000)) + ' s' : '?';
  function holder(h) {
    if (!h) return '?';
    return (h.app || '?') + ' · ' + (h.host || '?') + ' pid ' + (h.pid ?? '?');
  }
  async function forceRelease(name) {
    if (!confirm('Force-release ' + name + '? Its holder learns only at its next renewal.')) return;
    const res = await fetch('/locks/' + encodeURIComponent(name) + '/force-release', { method: 'POST' });
    $('status').textContent = res.ok ? 'force-released ' + name : 'force-release failed: ' + res.status;
  }
  function render(s) {
    $('live').className = 'live on';
    $('status').textContent = (s.error ? 'error: ' + s.error + ' · ' : '') + s.locks.length + ' held · ' +
      s.backend + (s.namespace ? ' · namespace ' + s.namespace : '') + ' · updated ' + new Date(s.at).toLocaleTimeString();
    $('status').className = s.error ? 'error' : '';
    $('action-head').textContent = s.forceRelease ? 'Action' : '';
    const body = $('locks');
    body.replaceChildren();
    if (s.locks.length === 0) {
      const row = body.insertRow();
      const td = cell(row, 'No locks held', 'empty');
      td.colSpan = 7;
    }
    for (const l of s.locks) {
      const row = body.insertRow();
      row.dataset.lock = l.name;
      cell(row, l.name);
      cell(row, holder(l.holder));
      cell(row, heldFor(l.holder && l.holder.acquiredAt), 'num');
      cell(row, l.ttl === null ? '?' : seconds(l.ttl), 'num');
      cell(row, l.waiting === null ? '?' : String(l.waiting), 'num');
      cell(row, l.fencingToken ?? '–', 'num');
      const action = row.insertCell();
      if (s.forceRelease) {
        const button = document.createElement('button');
        button.textContent = 'Force release';
        button.onclick = () => forceRelease(l.name);
        action.append(button);
      }
    }
    const recent = $('recent');
    recent.replaceChildren();
    for (const e of s.recent) {
      const li = document.createElement('li');
      li.className = e.kind;
      const kind = document.createElement('span');
      kind.className = 'kind';
      kind.textContent = e.kind;
      li.append(kind, new Date(e.at).toLocaleTimeString() + '  ' + e.name + ': ' + e.text);
      recent.append(li);
    }
  }
  const source = new EventSource('/locks/events');
  source.onmessage = (message) => render(JSON.parse(message.data));
  source.onerror = () => { $('live').className = 'live'; $('status').textContent = 'disconnected, retrying…'; };
</script>
</body>
</html>
`;
