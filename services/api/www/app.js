// The manager's page: one token (kept in sessionStorage, gone with the tab),
// the node's funnel, forecast, alerts and overdue follow-ups, and the drill
// down to a child node, an account or an opportunity. Everything comes from
// /v1 on this origin; every answer is polled with If-None-Match, so a
// refresh costs a 304 until the figures change. The DOM is built with
// createElement and textContent only: nothing from the data becomes markup.
'use strict';

const POLL_MS = 2000;
const TOKEN_KEY = 'ka_token';
const SVG_NS = 'http://www.w3.org/2000/svg';

const LABELS = {
  en: {
    title: 'Key-account funnel', login_title: 'Log in', token: 'Token', login: 'Log in',
    logout: 'Log out',
    login_help: 'Paste the token that kactl token create printed for you.',
    funnel: 'Funnel', forecast: 'Forecast', alerts: 'Firing alerts', followups: 'Overdue follow-ups',
    children: 'Below this node', stage: 'Stage', count: 'Open', amount: 'Amount',
    weighted: 'Weighted', health: 'Health', total: 'Open total', excellent: 'excellent',
    good: 'good', warning: 'warning', no_baseline: 'no baseline', none: 'no baseline',
    closed: 'Closed', commit: 'Commit', best_case: 'Best case', pipeline: 'Pipeline',
    weighted_pipeline: 'Weighted pipeline', quota: 'Quota', coverage: 'Coverage', gap: 'Gap',
    raw: 'Raw', adjusted: 'Adjusted', adjustments: 'Adjustments', no_forecast: 'No forecast yet.',
    no_alerts: 'No firing alerts.', no_followups: 'No overdue follow-ups.',
    no_funnel: 'No open opportunities.', no_children: 'No nodes below.',
    account: 'Account', rep: 'Rep', action: 'Action', due: 'Due', days_overdue: 'Days overdue',
    tier: 'Tier', revenue_12m: 'Revenue, last 12 months', visits: 'Visits',
    last_90_days: 'last 90 days', total_visits: 'total', deals: 'Deals', status: 'Status',
    close_date: 'Expected close', timeline: 'Timeline', owner: 'Owner', opportunity: 'Opportunity',
    applied: 'applied', not_applied: 'not applied', dwell: 'after', home: 'My node',
    updated: 'Updated', source: 'figures from', age: 'old', refresh: 'refreshes every 2 s',
    forbidden: 'Not allowed', not_found: 'Not found', unavailable: 'Service unavailable',
    error: 'Error', back: 'Back to my node', credit_code: 'Credit code', subject: 'Subject',
    since: 'since', recent_visits: 'Recent visits', objective: 'Objective', stage_move: 'stage',
    period: 'Period', win_probability: 'Win probability', bar_legend: 'bar length: amount',
  },
  zh: {
    title: '大客户销售漏斗', login_title: '登录', token: '令牌', login: '登录', logout: '退出',
    login_help: '粘贴 kactl token create 为你生成的令牌。',
    funnel: '销售漏斗', forecast: '销售预测', alerts: '正在告警', followups: '逾期跟进',
    children: '下级节点', stage: '阶段', count: '数量', amount: '金额', weighted: '加权金额',
    health: '健康度', total: '合计', excellent: '优秀', good: '良好', warning: '预警',
    no_baseline: '无基线', none: '无基线', closed: '已成交', commit: '承诺', best_case: '最佳',
    pipeline: '管道', weighted_pipeline: '加权管道', quota: '指标', coverage: '覆盖率', gap: '缺口',
    raw: '原始', adjusted: '修订后', adjustments: '修订记录', no_forecast: '暂无预测。',
    no_alerts: '没有正在告警。', no_followups: '没有逾期跟进。', no_funnel: '没有进行中的商机。',
    no_children: '没有下级节点。', account: '客户', rep: '客户经理', action: '动作', due: '应跟进',
    days_overdue: '逾期天数', tier: '等级', revenue_12m: '近12个月收入', visits: '拜访',
    last_90_days: '近90天', total_visits: '累计', deals: '商机', status: '状态',
    close_date: '预计成交', timeline: '时间线', owner: '负责人', opportunity: '商机',
    applied: '已应用', not_applied: '未应用', dwell: '停留', home: '我的节点', updated: '更新于',
    source: '数据来自', age: '前', refresh: '每2秒刷新', forbidden: '无权访问', not_found: '未找到',
    unavailable: '服务不可用', error: '错误', back: '返回我的节点', credit_code: '统一社会信用代码',
    subject: '对象', since: '开始于', recent_visits: '最近拜访', objective: '目的',
    stage_move: '阶段', period: '期间', win_probability: '赢率', bar_legend: '条形长度：金额',
  },
};

let lang = localStorage.getItem('ka_lang') ||
  ((navigator.language || '').toLowerCase().startsWith('zh') ? 'zh' : 'en');
const t = (k) => (LABELS[lang][k] !== undefined ? LABELS[lang][k] : LABELS.en[k] || k);

// --- helpers ---------------------------------------------------------------

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of kids.flat()) if (c !== null && c !== undefined && c !== false)
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function svg(tag, attrs, ...kids) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined)
    e.setAttribute(k, String(v));
  for (const c of kids) if (c) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

const locale = () => (lang === 'zh' ? 'zh-CN' : 'en-US');
// Amounts are integers in minor units of the deployment's one currency.
const money = (minor) => (minor === null || minor === undefined ? '–'
  : (minor / 100).toLocaleString(locale(), { minimumFractionDigits: 2, maximumFractionDigits: 2 }));
const int = (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString(locale()));
const pct = (bp) => (bp === null || bp === undefined ? '–' : `${(bp / 100).toFixed(1)}%`);
const when = (iso) => (iso ? new Date(iso).toLocaleString(locale(), { dateStyle: 'medium', timeStyle: 'short' }) : '–');
const day = (iso) => (iso ? String(iso).slice(0, 10) : '–');
const enc = encodeURIComponent;
const nodeLink = (id, text) => el('a', { href: `#/node/${enc(id)}`, 'data-node': id }, text || id);
const accountLink = (id, text) => el('a', { href: `#/account/${enc(id)}`, 'data-account': id }, text || id);
const oppLink = (id, text) => el('a', { href: `#/opportunity/${enc(id)}`, 'data-opportunity': id }, text || id);

function subjectLink(kind, id) {
  if (kind === 'account') return accountLink(id);
  if (kind === 'opportunity') return oppLink(id);
  if (kind === 'node') return nodeLink(id);
  return document.createTextNode(`${kind} ${id}`);
}

// --- the API ---------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

const answers = new Map(); // path -> {etag, data, source, age}
let lastSource = null;

async function api(path) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = { Authorization: `Bearer ${token}` };
  const kept = answers.get(path);
  if (kept && kept.etag) headers['If-None-Match'] = kept.etag;
  let r;
  try {
    // no-store: the page does its own revalidation, and sees the 304.
    r = await fetch(path, { headers, cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, { error: 'unreachable', detail: 'ka-api did not answer' });
  }
  if (r.status === 304 && kept) return { ...kept, changed: false };
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) throw new ApiError(r.status, body);
  const got = { etag: r.headers.get('ETag'), data: body, source: r.headers.get('X-KA-Source'),
    age: r.headers.get('X-KA-Age-Ms') };
  answers.set(path, got);
  return { ...got, changed: true };
}

// --- panels ----------------------------------------------------------------

// A panel owns one <section>, the paths it reads and how it draws them; it
// is redrawn only when one of its answers changed.
function panel(id, title, paths, draw) {
  const body = el('div', { class: 'body' });
  const section = el('section', { id, class: 'panel' }, title ? el('h2', { text: title }) : null, body);
  return { section, paths, draw, body, drawn: false };
}

let current = null; // {generation, panels}
let generation = 0;

let inflight = 0; // the timer skips a tick while a refresh is still out

async function refresh() {
  inflight++;
  try {
    await refreshPanels();
  } finally {
    inflight--;
  }
}

async function refreshPanels() {
  if (!current || !sessionStorage.getItem(TOKEN_KEY)) return;
  const view = current;
  for (const p of view.panels) {
    try {
      const got = await Promise.all(p.paths.map(api));
      if (view !== current) return; // navigated away meanwhile
      if (!p.drawn || got.some((g) => g.changed)) {
        p.body.replaceChildren(...[p.draw(...got.map((g) => g.data))].flat());
        p.drawn = true;
      }
      // The footer tells where the funnel's figures came from (Redis or PostgreSQL).
      if (p.section.id === 'funnel' || !lastSource) for (const g of got) if (g.source) lastSource = g;
    } catch (e) {
      if (view !== current) return;
      if (!(e instanceof ApiError)) throw e;
      if (e.status === 401) return logout(e.message);
      if (p.main) return showError(e);
      p.body.replaceChildren(errorBox(e));
      p.drawn = false;
    }
  }
  status();
}

function status() {
  const s = lastSource;
  document.getElementById('status').textContent =
    `${t('updated')} ${new Date().toLocaleTimeString(locale())}` +
    (s ? ` · ${t('source')} ${s.source}${s.age !== null ? `, ${int(s.age)} ms ${t('age')}` : ''}` : '') +
    ` · ${t('refresh')}`;
}

function errorBox(e) {
  const what = e.status === 403 ? t('forbidden') : e.status === 404 ? t('not_found')
    : e.status === 503 ? t('unavailable') : t('error');
  return el('div', { class: `error status-${e.status}`, role: 'alert', 'data-status': e.status },
    el('h2', { text: `${e.status || ''} ${what}`.trim() }),
    el('p', { class: 'detail', text: e.message }),
    el('p', {}, el('a', { href: '#/' }, t('back'))));
}

function showError(e) {
  current = null;
  document.getElementById('status').textContent = '';
  document.getElementById('view').replaceChildren(el('div', { id: 'error' }, errorBox(e)));
}

// --- the node view -----------------------------------------------------------

const HEALTH = ['excellent', 'good', 'warning'];
const healthOf = (st) => (st.health && HEALTH.includes(st.health.status) ? st.health.status : 'none');

function drawNode(n) {
  const node = n.node;
  const crumbs = el('nav', { class: 'crumbs' });
  for (const id of n.path) crumbs.append(nodeLink(id), ' › ');
  crumbs.append(el('strong', { text: node.name }));
  document.title = `${node.name} · ${t('title')}`;
  return [crumbs, el('h1', { id: 'node-name', 'data-node': node.id }, node.name,
    el('span', { class: 'kind', text: ` ${node.kind} · ${node.id}` }))];
}

function drawChildren(c) {
  if (!c.items.length) return el('p', { class: 'empty', text: t('no_children') });
  return el('ul', { class: 'children' }, c.items.map((k) =>
    el('li', {}, nodeLink(k.id, k.name), el('span', { class: 'kind', text: ` ${k.kind}` }))));
}

// A funnel bar, centred so the stages read as a funnel; its colour is the
// stage's health against the baseline.
function funnelBar(st, max) {
  const W = 260, H = 22;
  const w = max > 0 ? Math.max(st.amount_minor > 0 ? 3 : 0, (st.amount_minor / max) * W) : 0;
  const h = healthOf(st);
  return svg('svg', { class: 'bar', width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img',
    'aria-label': `${st.code} ${money(st.amount_minor)} ${t(h)}` },
  svg('rect', { x: 0, y: 0, width: W, height: H, class: 'track' }),
  svg('rect', { x: (W - w) / 2, y: 2, width: w, height: H - 4, rx: 3, class: `fill health-${h}` }));
}

function drawFunnel(f) {
  if (!f.definitions.length) return el('p', { class: 'empty', text: t('no_funnel') });
  return f.definitions.map((d) => {
    const max = Math.max(0, ...d.stages.map((s) => s.amount_minor));
    const rows = d.stages.map((s) => {
      const h = healthOf(s);
      return el('tr', { 'data-stage': s.code, 'data-health': h },
        el('td', { class: 'code', text: s.code }),
        el('td', { class: 'name', text: s.name }),
        el('td', { class: 'barcell' }, funnelBar(s, max)),
        el('td', { class: 'num count', text: int(s.count) }),
        el('td', { class: 'num amount', text: money(s.amount_minor) }),
        el('td', { class: 'num weighted', text: money(s.weighted_amount_minor) }),
        el('td', { class: `health health-${h}` }, el('span', { class: 'dot' }),
          ` ${t(h)}${s.health && s.health.ratio_bp !== null ? ` ${pct(s.health.ratio_bp)}` : ''}`));
    });
    return el('div', { class: 'definition', 'data-definition': d.definition_id },
      el('h3', { text: d.definition_id }),
      el('table', { class: 'funnel' },
        el('thead', {}, el('tr', {}, el('th', { text: t('stage') }), el('th', {}),
          el('th', { class: 'legend', text: t('bar_legend') }), el('th', { class: 'num', text: t('count') }),
          el('th', { class: 'num', text: t('amount') }), el('th', { class: 'num', text: t('weighted') }),
          el('th', { text: t('health') }))),
        el('tbody', {}, rows),
        el('tfoot', {}, el('tr', { class: 'open' }, el('td', { colspan: 3, text: t('total') }),
          el('td', { class: 'num count', text: int(d.open.count) }),
          el('td', { class: 'num amount', text: money(d.open.amount_minor) }),
          el('td', { class: 'num weighted', text: money(d.open.weighted_amount_minor) }),
          el('td', {})))));
  });
}

// Closed, commit, best case and pipeline stacked against the quota's line.
function forecastBar(m, quota) {
  const W = 420, H = 26;
  const parts = ['closed', 'commit', 'best_case', 'pipeline'];
  const total = parts.reduce((a, k) => a + m[k], 0);
  const scale = Math.max(total, quota || 0, 1);
  const g = svg('svg', { class: 'fbar', width: W, height: H + 14, viewBox: `0 0 ${W} ${H + 14}`, role: 'img' });
  g.append(svg('rect', { x: 0, y: 0, width: W, height: H, class: 'track' }));
  let x = 0;
  for (const k of parts) {
    const w = (m[k] / scale) * W;
    if (w > 0) g.append(svg('rect', { x, y: 0, width: w, height: H, class: `seg seg-${k}` },
      svg('title', {}, `${t(k)} ${money(m[k])}`)));
    x += w;
  }
  if (quota) {
    const qx = Math.min(W - 1, (quota / scale) * W);
    g.append(svg('line', { x1: qx, x2: qx, y1: -2, y2: H + 2, class: 'quota' }));
    g.append(svg('text', { x: Math.max(0, qx - 4), y: H + 12, 'text-anchor': 'end', class: 'quota-label' },
      `${t('quota')} ${money(quota)}`));
  }
  return g;
}

function drawForecast(f) {
  if (!f.periods.length) return el('p', { class: 'empty', text: t('no_forecast') });
  return f.periods.map((p) => {
    const cats = ['closed', 'commit', 'best_case', 'pipeline', 'weighted_pipeline'];
    return el('div', { class: 'period', 'data-period': p.label, 'data-kind': p.period_kind },
      el('h3', {}, `${p.label} `, el('span', { class: 'kind', text: p.period_kind })),
      forecastBar(p.adjusted, p.quota_minor),
      el('div', { class: 'legend-row' }, ['closed', 'commit', 'best_case', 'pipeline'].map((k) =>
        el('span', { class: `key seg-${k}` }, el('i', {}), t(k)))),
      el('dl', { class: 'kpi' },
        el('div', {}, el('dt', { text: t('quota') }), el('dd', { class: 'quota', text: money(p.quota_minor) })),
        el('div', {}, el('dt', { text: t('coverage') }), el('dd', { class: 'coverage', text: pct(p.coverage_bp.adjusted) })),
        el('div', {}, el('dt', { text: t('gap') }), el('dd', { class: 'gap', text: money(p.gap_minor.adjusted) }))),
      el('table', { class: 'cats' },
        el('thead', {}, el('tr', {}, el('th', {}), el('th', { class: 'num', text: t('raw') }),
          el('th', { class: 'num', text: t('adjusted') }))),
        el('tbody', {}, cats.map((k) => el('tr', { 'data-category': k }, el('th', { text: t(k) }),
          el('td', { class: 'num raw', text: money(p.raw[k]) }),
          el('td', { class: 'num adjusted', text: money(p.adjusted[k]) }))),
        el('tr', { class: 'sub' }, el('th', { text: t('coverage') }), el('td', { class: 'num', text: pct(p.coverage_bp.raw) }),
          el('td', { class: 'num', text: pct(p.coverage_bp.adjusted) })),
        el('tr', { class: 'sub' }, el('th', { text: t('gap') }), el('td', { class: 'num', text: money(p.gap_minor.raw) }),
          el('td', { class: 'num', text: money(p.gap_minor.adjusted) })))),
      p.adjustments.length ? el('details', {}, el('summary', { text: `${t('adjustments')} (${p.adjustments.length})` }),
        el('ul', {}, p.adjustments.map((a) => el('li', {},
          `${when(a.adjusted_at)} · ${t(a.category)} ${money(a.raw_minor)} → ${money(a.adjusted_minor)} · ${a.adjusted_by || ''} · ${a.reason || ''}`)))) : null);
  });
}

function drawAlerts(a) {
  if (!a.items.length) return el('p', { class: 'empty', text: t('no_alerts') });
  return el('ol', { class: 'alerts' }, a.items.map((x) =>
    el('li', { class: `alert sev-${x.severity}`, 'data-fingerprint': x.fingerprint },
      el('span', { class: 'sev', text: x.severity }),
      el('span', { class: 'type', text: x.type }),
      el('span', { class: 'summary', text: x.summary || '' }),
      el('span', { class: 'subject' }, subjectLink(x.subject_kind, x.subject_id)),
      el('time', { datetime: x.last_transition_at, text: when(x.last_transition_at) }))));
}

function drawFollowups(f) {
  if (!f.items.length) return el('p', { class: 'empty', text: t('no_followups') });
  return el('table', { class: 'followups' },
    el('thead', {}, el('tr', {}, [t('account'), t('tier'), t('rep'), t('action'), t('due'), t('days_overdue')]
      .map((h, i) => el('th', { class: i === 5 ? 'num' : null, text: h })))),
    el('tbody', {}, f.items.map((x) => el('tr', { 'data-account': x.account_id },
      el('td', {}, accountLink(x.account_id, x.account_name)),
      el('td', { text: x.tier || '–' }),
      el('td', {}, nodeLink(x.rep_id, x.rep_name || x.rep_id)),
      el('td', { text: x.action }),
      el('td', { text: day(x.next_due_at) }),
      el('td', { class: 'num days', text: int(x.days_overdue) })))));
}

function nodeView(id) {
  const base = `/v1/nodes/${enc(id)}`;
  const head = panel('node', null, [base], drawNode);
  head.main = true; // its 403 or 404 is the whole page's
  return [head,
    panel('funnel', t('funnel'), [`${base}/funnel`], drawFunnel),
    panel('forecast', t('forecast'), [`${base}/forecast`], drawForecast),
    panel('alerts', t('alerts'), [`${base}/alerts?limit=20`], drawAlerts),
    panel('followups', t('followups'), [`${base}/followups?overdue=true&limit=20`], drawFollowups),
    panel('children', t('children'), [`${base}/children`], drawChildren)];
}

// --- account and opportunity ------------------------------------------------------

function facts(pairs) {
  return el('dl', { class: 'facts' }, pairs.map(([k, v, cls]) =>
    el('div', {}, el('dt', { text: k }), el('dd', { class: cls || null }, v))));
}

function drawAccount(a) {
  document.title = `${a.display_name} · ${t('title')}`;
  return [
    el('h1', { id: 'account-name', 'data-account': a.id }, a.display_name,
      el('span', { class: 'kind', text: ` ${t('account')} · ${a.id}` })),
    facts([[t('tier'), a.tier || '–'], [t('credit_code'), a.credit_code || '–'],
      [t('owner'), a.owner_rep_id ? nodeLink(a.owner_rep_id) : '–'],
      [t('revenue_12m'), money(a.revenue_12m_minor), 'revenue'],
      [t('visits'), `${int(a.visits.last_90_days)} ${t('last_90_days')} · ${int(a.visits.total)} ${t('total_visits')}`]]),
    el('h2', { text: t('deals') }),
    a.deals.length ? el('table', { class: 'deals' },
      el('thead', {}, el('tr', {}, [t('opportunity'), t('status'), t('stage'), t('amount'), t('weighted'), t('close_date')]
        .map((h) => el('th', { text: h })))),
      el('tbody', {}, a.deals.map((d) => el('tr', { 'data-opportunity': d.id },
        el('td', {}, oppLink(d.id)), el('td', { text: d.status }), el('td', { text: d.stage_code }),
        el('td', { class: 'num', text: money(d.amount_minor) }),
        el('td', { class: 'num', text: money(d.weighted_amount_minor) }),
        el('td', { text: day(d.expected_close_date) }))))) : el('p', { class: 'empty', text: '–' }),
    el('h2', { text: t('alerts') }),
    drawAlerts({ items: a.alerts.map((x) => ({ ...x, last_transition_at: x.starts_at })) }),
    el('h2', { text: t('recent_visits') }),
    el('ul', { class: 'visits' }, a.visits.recent.map((v) => el('li', {},
      `${when(v.visited_at)} · `, nodeLink(v.rep_id), ` · ${v.objective || ''}`,
      v.opportunity_id ? [' · ', oppLink(v.opportunity_id)] : null))),
  ];
}

function dwell(s) {
  if (s === null || s === undefined) return '';
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : `${m}m`;
}

function drawOpportunity(o) {
  document.title = `${o.id} · ${t('title')}`;
  return [
    el('h1', { id: 'opportunity-id', 'data-opportunity': o.id }, o.id,
      el('span', { class: 'kind', text: ` ${t('opportunity')}` })),
    facts([[t('account'), accountLink(o.account_id, o.account_name)],
      [t('owner'), nodeLink(o.owner_rep_id)], [t('status'), o.status], [t('stage'), o.stage_code],
      [t('amount'), money(o.amount_minor)], [t('weighted'), money(o.weighted_amount_minor)],
      [t('win_probability'), pct(o.win_probability_bp)], [t('close_date'), day(o.expected_close_date)]]),
    el('h2', { text: t('timeline') }),
    el('ol', { class: 'timeline' }, o.timeline.map((e) => el('li', {
      class: `ev ${e.kind === 'stage' ? 'move' : ''} ${e.applied === false ? 'rejected' : ''}`, 'data-kind': e.kind },
    el('time', { datetime: e.at, text: when(e.at) }),
    e.kind === 'stage'
      ? el('span', {}, `${t('stage_move')} ${e.from_stage || '∅'} → ${e.to_stage}`,
        e.dwell_seconds !== null && e.dwell_seconds !== undefined ? el('span', { class: 'dwell', text: ` (${t('dwell')} ${dwell(e.dwell_seconds)})` }) : null)
      : el('span', {}, e.kind, el('span', { class: 'applied',
        text: e.applied ? ` · ${t('applied')}` : ` · ${t('not_applied')}${e.not_applied_reason ? `: ${e.not_applied_reason}` : ''}` })))))];
}

// --- routing, login ------------------------------------------------------------------

let me = null;

function route() {
  const [, kind, rawId] = (location.hash || '').match(/^#\/(node|account|opportunity)\/(.+)$/) || [];
  const id = rawId ? decodeURIComponent(rawId) : null;
  let panels;
  if (kind === 'account') {
    panels = [panel('account', null, [`/v1/accounts/${enc(id)}`], drawAccount)];
    panels[0].main = true;
  } else if (kind === 'opportunity') {
    panels = [panel('opportunity', null, [`/v1/opportunities/${enc(id)}`], drawOpportunity)];
    panels[0].main = true;
  } else {
    panels = nodeView(id || me.node.id);
  }
  current = { generation: ++generation, panels };
  lastSource = null;
  lastSource = null;
  document.getElementById('view').replaceChildren(...panels.map((p) => p.section));
  return refresh();
}

function showLogin(reason) {
  document.getElementById('login').hidden = false;
  document.getElementById('logout').hidden = true;
  document.getElementById('who').textContent = '';
  document.getElementById('view').replaceChildren();
  document.getElementById('status').textContent = '';
  document.getElementById('login-error').textContent = reason || '';
  document.getElementById('token').focus();
}

function logout(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  answers.clear();
  current = null;
  me = null;
  showLogin(reason);
}

async function start() {
  try {
    me = (await api('/v1/me')).data;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return logout(e.message);
    return showError(e);
  }
  document.getElementById('login').hidden = true;
  document.getElementById('logout').hidden = false;
  const who = document.getElementById('who');
  who.replaceChildren(nodeLink(me.node.id, me.node.name), ` (${me.node.kind}${me.ops ? ', ops' : ''})`);
  return route();
}

function applyLabels() {
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  for (const e of document.querySelectorAll('[data-l]')) e.textContent = t(e.dataset.l);
  document.getElementById('lang').textContent = lang === 'zh' ? 'English' : '中文';
}

document.addEventListener('DOMContentLoaded', () => {
  applyLabels();
  document.getElementById('login').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = document.getElementById('token');
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    input.value = '';
    document.getElementById('login-error').textContent = '';
    start();
  });
  document.getElementById('logout').addEventListener('click', () => logout(''));
  document.getElementById('lang').addEventListener('click', () => {
    lang = lang === 'zh' ? 'en' : 'zh';
    localStorage.setItem('ka_lang', lang);
    applyLabels();
    if (me) route();
  });
  window.addEventListener('hashchange', () => { if (me) route(); });
  setInterval(() => { if (!document.hidden && !inflight) refresh(); }, POLL_MS);
  if (sessionStorage.getItem(TOKEN_KEY)) start(); else showLogin('');
});
