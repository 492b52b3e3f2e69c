// The Access tokens page: the list with search, filters and paging; Add; and each row's
// overflow menu (Edit, Activate/Deactivate, Rotate, Remove, History).
//
// The page hides what the member may not do (asking the server with /auth/check) and shows the
// server's refusal in words when it is tried anyway: the rules live on the server.

import { api, mayDo } from './api.js';
import { openAddToken } from './add-token.js';
import { closeMenu, notify, openDialog, secretPanel, toggleMenu } from './dialogs.js';
import { debounce, h, icon, replace, uid } from './dom.js';
import { describeError, describeEvent, exactTime, fromNow, permissionSummary, tableDate } from './words.js';

const MANAGE_PERSONAL = 'ManagePersonalAccessTokens';
const MANAGE_SERVICE = 'ManageServiceAccessTokens';
const ALL_TOKENS = 'access-token/*';
const PAGE_SIZES = [10, 20, 50, 100];

const STATUS_HELP = {
  Active: 'A token can be used only while it is active.',
  Inactive: 'API calls made with an inactive token get a Forbidden response.',
  Expired: 'The token has expired: API calls made with it get a Forbidden response.',
};

/** ctx: {user: {id, name, email}, organization: {id, name}} */
export function tokensPage(ctx) {
  const filters = { name: '', type: '', status: '', creatorId: '' };
  const paging = { pageIndex: 0, pageSize: 10, total: 0, exact: true };
  let caps = null;
  let items = [];
  let rowCaps = new Map();
  let loadSeq = 0;
  let highlight = null;
  const members = new Map();

  // ---- Header: title, what tokens are, Add.
  const addButton = h('button', { type: 'button', class: 'btn btn-primary', hidden: true, onclick: openAdd },
    icon('plus'), h('span', { text: 'Add' }));
  const scopeNote = h('p', { class: 'page-note', hidden: true });
  const header = h('div', { class: 'page-head' },
    h('div', {},
      h('h1', { text: 'Access tokens' }),
      h('p', { class: 'lead' },
        'Access tokens authenticate scripts and integrations with the API. ',
        h('strong', { text: 'Personal' }), ' tokens act as you and never do more than you can; ',
        h('strong', { text: 'service' }), ' tokens keep the permissions they were given, independent of you.'),
      scopeNote),
    h('div', { class: 'page-actions' }, addButton));

  const secretSlot = h('div', { class: 'secret-slot' });
  const pageError = h('div', { class: 'page-error', role: 'alert', hidden: true });

  // ---- Toolbar: search and filters (server-side).
  const search = h('input', {
    type: 'search',
    class: 'search-input',
    placeholder: 'Search by name',
    'aria-label': 'Search tokens',
    autocomplete: 'off',
    spellcheck: 'false',
  });
  search.addEventListener('input', debounce(() => {
    filters.name = search.value.trim();
    paging.pageIndex = 0;
    load();
  }, 250));
  const typeFilter = select('Token kind', [['', 'All types'], ['Personal', 'Personal'], ['Service', 'Service']], (v) => { filters.type = v; });
  const statusFilter = select('Token status', [['', 'All statuses'], ['Active', 'Active'], ['Inactive', 'Inactive']], (v) => { filters.status = v; });
  const creatorFilter = select('Created by', [['', 'Anyone'], [ctx.user.id, 'Me']], (v) => { filters.creatorId = v; });
  creatorFilter.hidden = true;

  function select(label, options, set) {
    const el = h('select', { class: 'filter', 'aria-label': label },
      options.map(([value, text]) => h('option', { value }, text)));
    el.addEventListener('change', () => {
      set(el.value);
      paging.pageIndex = 0;
      load();
    });
    return el;
  }

  const toolbar = h('div', { class: 'toolbar' },
    h('div', { class: 'search' }, icon('search'), search),
    h('div', { class: 'filters' }, typeFilter, creatorFilter, statusFilter));

  // ---- The table.
  const tbody = h('tbody');
  const captionId = uid('caption');
  const table = h('table', { class: 'tokens', 'aria-labelledby': captionId },
    h('caption', { id: captionId, class: 'visually-hidden', text: 'Access tokens' }),
    h('thead', {}, h('tr', {},
      ['Name', 'Type', 'Creator', 'Status', 'Permissions', 'Expires', 'Last used', 'Hint'].map((c) => h('th', { scope: 'col', text: c })),
      h('th', { scope: 'col' }, h('span', { class: 'visually-hidden', text: 'Actions' })))),
    tbody);
  const empty = h('div', { class: 'empty', hidden: true });
  const rangeText = h('span', { class: 'range', 'aria-live': 'polite' });
  const prev = h('button', { type: 'button', class: 'btn btn-secondary btn-small', onclick: () => go(-1) }, 'Previous');
  const next = h('button', { type: 'button', class: 'btn btn-secondary btn-small', onclick: () => go(1) }, 'Next');
  prev.setAttribute('aria-label', 'Previous page');
  next.setAttribute('aria-label', 'Next page');
  const pageSize = h('select', { class: 'filter', 'aria-label': 'Rows per page' },
    PAGE_SIZES.map((n) => h('option', { value: String(n) }, `${n} per page`)));
  pageSize.addEventListener('change', () => {
    paging.pageSize = Number(pageSize.value);
    paging.pageIndex = 0;
    load();
  });
  const pagerButtons = h('div', { class: 'pager-buttons' }, pageSize, prev, next);
  const pager = h('div', { class: 'pager' }, rangeText, pagerButtons);
  const card = h('div', { class: 'card' }, toolbar, h('div', { class: 'table-wrap' }, table), empty, pager);

  const element = h('div', { class: 'page' }, header, secretSlot, pageError, card);

  function go(delta) {
    paging.pageIndex = Math.max(0, paging.pageIndex + delta);
    load();
  }

  // ---- What the member may do here.
  async function loadCapabilities() {
    const [personal, service, list, iam] = await mayDo([
      { action: MANAGE_PERSONAL, resource: ALL_TOKENS },
      { action: MANAGE_SERVICE, resource: ALL_TOKENS },
      { action: 'ListAccessTokens', resource: ALL_TOKENS },
      { action: 'CanManageIAM', resource: 'iam/*' },
    ]);
    caps = { personal, service, list, iam, audit: list || iam };
    addButton.hidden = !(personal || service);
    creatorFilter.hidden = !list;
    scopeNote.hidden = list;
    scopeNote.textContent = 'You see the tokens you created.';
    if (list) loadMembers();
  }

  async function loadMembers() {
    try {
      const page = await api('GET', '/members', { query: { pageSize: 100 } });
      for (const m of page.items) members.set(m.id, m);
      const others = page.items.filter((m) => m.id !== ctx.user.id).sort((a, b) => a.name.localeCompare(b.name));
      creatorFilter.append(...others.map((m) => h('option', { value: m.id }, m.name)));
    } catch {
      // Without the member list the creator filter offers "Anyone" and "Me" only.
    }
  }

  // ---- Loading a page of tokens, and what may be done to each.
  async function load() {
    const seq = ++loadSeq;
    table.setAttribute('aria-busy', 'true');
    try {
      const page = await api('GET', '/access-tokens', {
        query: { ...filters, pageIndex: paging.pageIndex, pageSize: paging.pageSize },
      });
      if (page.items.length === 0 && paging.pageIndex > 0 && page.totalCount > 0) {
        // The last page emptied (a removal): step back.
        paging.pageIndex = Math.max(0, Math.ceil(page.totalCount / paging.pageSize) - 1);
        return load();
      }
      const allowed = await mayDo(page.items.map((t) => ({
        action: t.type === 'Personal' ? MANAGE_PERSONAL : MANAGE_SERVICE,
        resource: `access-token/${t.id}`,
      })));
      if (seq !== loadSeq) return;
      items = page.items;
      paging.total = page.totalCount;
      // Counting stops at 10,000: beyond, the total is a floor ("10000+").
      paging.exact = page.totalCountIsExact !== false;
      rowCaps = new Map(items.map((t, i) => [t.id, rowAbilities(t, allowed[i])]));
      pageError.hidden = true;
      render();
    } catch (error) {
      if (seq !== loadSeq || error.status === 401) return;
      showPageError(`Could not load the tokens. ${describeError(error)}`);
    } finally {
      if (seq === loadSeq) table.removeAttribute('aria-busy');
    }
  }

  // SPEC §5.2, as the page can tell: a personal token of another member needs IAM too; rotating
  // hands out a secret, so it is never offered on another member's personal token.
  function rowAbilities(token, allowedOnToken) {
    const own = token.creator?.id === ctx.user.id;
    const personal = token.type === 'Personal';
    const manage = personal ? allowedOnToken && (own || caps.iam) : allowedOnToken;
    return { manage, rotate: manage && (!personal || own), own };
  }

  function showPageError(message) {
    replace(pageError, icon('alert'), h('span', { text: message }));
    pageError.hidden = false;
  }

  function render() {
    closeMenu();
    // Redrawing the rows must not lose the keyboard's place (after a dialog, say).
    const focusedId = tbody.contains(document.activeElement)
      ? document.activeElement.closest('tr')?.dataset.tokenId
      : null;
    replace(tbody, items.map(row));
    if (focusedId) focusRow(focusedId)()?.focus();
    const filtered = Object.values(filters).some(Boolean);
    table.hidden = items.length === 0;
    empty.hidden = items.length > 0;
    if (items.length === 0) {
      replace(empty, filtered
        ? [h('h2', { text: 'No tokens match' }), h('p', { text: 'Try another name or fewer filters.' }),
          h('button', { type: 'button', class: 'btn btn-secondary', onclick: clearFilters }, 'Clear filters')]
        : [icon('key'), h('h2', { text: 'No access tokens yet' }),
          h('p', { text: caps?.personal || caps?.service
            ? 'Create one with Add. You will see its secret once, right after you save it.'
            : 'You may not create tokens in this organization.' })]);
    }
    const from = paging.pageIndex * paging.pageSize + 1;
    const to = paging.pageIndex * paging.pageSize + items.length;
    const onePage = paging.pageIndex === 0 && paging.total <= paging.pageSize;
    rangeText.textContent = onePage
      ? `${paging.total} token${paging.total === 1 ? '' : 's'}`
      : `${from}–${to} of ${paging.total}${paging.exact === false ? '+' : ''}`;
    prev.disabled = paging.pageIndex === 0;
    next.disabled = paging.exact === false ? items.length < paging.pageSize : to >= paging.total;
    pager.hidden = paging.total === 0;
    pagerButtons.hidden = onePage && paging.pageSize === PAGE_SIZES[0];
  }

  function clearFilters() {
    Object.assign(filters, { name: '', type: '', status: '', creatorId: '' });
    search.value = '';
    typeFilter.value = '';
    statusFilter.value = '';
    creatorFilter.value = '';
    paging.pageIndex = 0;
    load();
  }

  function row(token) {
    const can = rowCaps.get(token.id) || {};
    const expired = token.expiresAt && new Date(token.expiresAt) <= new Date();
    const status = expired ? 'Expired' : token.status;
    const summary = permissionSummary(token);
    const creator = token.creator || {};
    const tr = h('tr', { 'data-token-id': token.id, class: token.id === highlight ? 'highlight' : undefined },
      h('td', { class: 'cell-name', text: token.name }),
      h('td', {}, h('span', { class: `tag tag-${token.type.toLowerCase()}`, text: token.type })),
      h('td', { class: 'cell-creator', title: creator.email || '' },
        creator.name || 'Unknown', can.own ? h('span', { class: 'muted', text: ' (you)' }) : null),
      h('td', {}, h('span', { class: `badge badge-${status.toLowerCase()}`, title: STATUS_HELP[status], text: status })),
      h('td', { class: 'cell-perms' }, h('span', { title: summary.detail, text: summary.text })),
      h('td', { class: 'cell-time' }, token.expiresAt
        ? h('time', { datetime: token.expiresAt, title: `${exactTime(token.expiresAt)} (${fromNow(token.expiresAt)})`, text: tableDate(token.expiresAt) })
        : h('span', { class: 'muted', text: 'Never' })),
      h('td', { class: 'cell-time' }, token.lastUsedAt
        ? h('time', { datetime: token.lastUsedAt, title: exactTime(token.lastUsedAt), text: fromNow(token.lastUsedAt) })
        : h('span', { class: 'muted', text: 'Never' })),
      h('td', {}, h('code', { class: 'hint', text: token.hint })),
      h('td', { class: 'cell-actions' }, actionsFor(token, can)));
    return tr;
  }

  function actionsFor(token, can) {
    const items = menuItems(token, can);
    if (!items.length) {
      return h('span', { class: 'read-only', title: 'You may not manage this token' },
        icon('lock'), h('span', { class: 'visually-hidden', text: 'Read-only' }));
    }
    const trigger = h('button', {
      type: 'button',
      class: 'btn-icon row-menu',
      'aria-label': `Actions for ${token.name}`,
      'aria-haspopup': 'true',
      'aria-expanded': 'false',
      onclick: () => toggleMenu(trigger, `Actions for ${token.name}`, menuItems(token, can)),
    }, icon('kebab'));
    return trigger;
  }

  function menuItems(token, can) {
    const list = [];
    if (can.manage) {
      list.push({ label: 'Edit', description: 'Change the name.', onSelect: () => editToken(token) });
      if (token.status === 'Active') {
        list.push({
          label: 'Deactivate',
          description: 'API calls made with it will get a Forbidden response until it is activated again.',
          onSelect: () => setStatus(token, false),
        });
      } else {
        list.push({
          label: 'Activate',
          description: 'A token can be used only when it is active.',
          onSelect: () => setStatus(token, true),
        });
      }
      if (can.rotate) {
        list.push({ label: 'Rotate', description: 'Replace the secret; see the new one once.', onSelect: () => rotateToken(token) });
      }
    }
    if (caps?.audit) {
      list.push({ label: 'History', description: 'Who changed this token, and when.', onSelect: () => showHistory(token) });
    }
    if (can.manage) {
      list.push({ separator: true });
      list.push({ label: 'Remove', description: 'Delete it for good.', danger: true, onSelect: () => removeToken(token) });
    }
    return list;
  }

  const focusRow = (id) => () =>
    tbody.querySelector(`tr[data-token-id="${CSS.escape(id)}"] .row-menu`) || (addButton.hidden ? search : addButton);

  // ---- Actions.
  function openAdd() {
    openAddToken({
      caps,
      returnFocus: () => addButton,
      onCreated: (created) => {
        showSecret(`Token “${created.name}” created`, created);
        notify(`Created the ${created.type.toLowerCase()} token “${created.name}”.`);
      },
    });
  }

  function showSecret(heading, created) {
    highlight = created.id;
    const panel = secretPanel({
      heading,
      secret: created.token,
      tokenName: created.name,
      onDismiss: () => {
        highlight = null;
        render();
        (addButton.hidden ? search : addButton).focus();
      },
    });
    replace(secretSlot, panel);
    panel.focus();
    load();
  }

  function editToken(token) {
    const id = uid('edit-name');
    const input = h('input', { id, type: 'text', value: token.name, maxlength: '128', required: true, autocomplete: 'off', autofocus: true });
    openDialog({
      title: 'Edit access token',
      body: [h('div', { class: 'field' }, h('label', { for: id, text: 'Name' }), input,
        h('p', { class: 'field-hint', text: 'Only the name can change: a token’s type and permissions are fixed when it is created.' }))],
      returnFocus: focusRow(token.id),
      actions: [
        { label: 'Cancel', onClick: (d) => d.close() },
        {
          label: 'Save',
          kind: 'primary',
          submit: true,
          onClick: async (d) => {
            const name = input.value.trim();
            if (!name) throw new Error('Enter a name.');
            if (name === token.name) return d.close();
            await call(() => api('PUT', `/access-tokens/${token.id}`, { body: { name } }));
            d.close();
            notify(`Renamed “${token.name}” to “${name}”.`);
            load();
          },
        },
      ],
    });
  }

  async function setStatus(token, active) {
    try {
      await api('POST', `/access-tokens/${token.id}/${active ? 'activate' : 'deactivate'}`);
      notify(active
        ? `“${token.name}” is active: it can be used again.`
        : `“${token.name}” is inactive: API calls made with it get a Forbidden response until you activate it.`);
    } catch (error) {
      if (error.status === 401) return;
      notify(describeError(error), 'error');
    }
    await load();
    focusRow(token.id)()?.focus();
  }

  function rotateToken(token) {
    const id = uid('grace');
    const grace = h('select', { id },
      h('option', { value: '0' }, 'No: it stops working now'),
      h('option', { value: '3600' }, 'For 1 hour'),
      h('option', { value: '86400' }, 'For 24 hours'));
    openDialog({
      title: `Rotate “${token.name}”`,
      description: 'A new secret replaces the current one. You will see the new secret once; update every integration that uses this token.',
      body: [h('div', { class: 'field' },
        h('label', { for: id, text: 'Should the current secret keep working?' }), grace,
        h('p', { class: 'field-hint', text: 'A grace period lets you update your integrations before the current secret stops working.' }))],
      returnFocus: focusRow(token.id),
      actions: [
        { label: 'Cancel', onClick: (d) => d.close(), autofocus: true },
        {
          label: 'Rotate',
          kind: 'primary',
          onClick: async (d) => {
            const rotated = await call(() => api('POST', `/access-tokens/${token.id}/rotate`, {
              body: { oldTokenExpiresInSeconds: Number(grace.value) },
            }));
            d.close();
            showSecret(`New secret for “${rotated.name}”`, rotated);
          },
        },
      ],
    });
  }

  function removeToken(token) {
    openDialog({
      title: `Remove “${token.name}”?`,
      description: 'This cannot be undone. The token stops working at once and can never be restored: integrations that use it will be refused.',
      returnFocus: focusRow(token.id),
      actions: [
        { label: 'Cancel', onClick: (d) => d.close(), autofocus: true },
        {
          label: 'Remove',
          kind: 'danger',
          onClick: async (d) => {
            await call(() => api('DELETE', `/access-tokens/${token.id}`));
            d.close();
            notify(`Removed “${token.name}”.`);
            if (highlight === token.id) replace(secretSlot);
            load();
          },
        },
      ],
    });
  }

  function showHistory(token) {
    const content = h('div', { class: 'history', 'aria-busy': 'true' }, h('p', { class: 'muted', text: 'Loading…' }));
    openDialog({
      title: `History of “${token.name}”`,
      body: [content],
      returnFocus: focusRow(token.id),
      actions: [{ label: 'Close', kind: 'secondary', autofocus: true, onClick: (d) => d.close() }],
    });
    (async () => {
      try {
        const page = await api('GET', '/audit-logs', { query: { targetId: token.id, pageSize: 50 } });
        const rows = await Promise.all(page.items.map(async (event) => h('tr', {},
          h('td', { class: 'cell-time' }, h('time', { datetime: event.at, title: exactTime(event.at), text: fromNow(event.at) })),
          h('td', { text: describeEvent(event) }),
          h('td', { text: await actorName(event) }))));
        content.removeAttribute('aria-busy');
        replace(content, rows.length
          ? h('table', { class: 'history-table' },
            h('thead', {}, h('tr', {}, ['When', 'What', 'Who'].map((c) => h('th', { scope: 'col', text: c })))),
            h('tbody', {}, rows))
          : h('p', { class: 'muted', text: 'No events recorded for this token.' }),
        page.totalCount > page.items.length
          ? h('p', { class: 'muted', text: `The ${page.items.length} latest of ${page.totalCount} events.` })
          : null);
      } catch (error) {
        content.removeAttribute('aria-busy');
        replace(content, h('p', { class: 'form-error', role: 'alert', text: describeError(error) }));
      }
    })();
  }

  async function actorName(event) {
    if (event.actorKind === 'user') {
      if (event.actorId === ctx.user.id) return `${ctx.user.name} (you)`;
      if (!members.has(event.actorId)) {
        try {
          members.set(event.actorId, await api('GET', `/members/${event.actorId}`));
        } catch {
          members.set(event.actorId, null);
        }
      }
      return members.get(event.actorId)?.name || 'A former member';
    }
    const known = items.find((t) => t.id === event.actorId);
    const kind = event.actorKind === 'service-token' ? 'service token' : 'personal token';
    return known ? `The ${kind} “${known.name}”` : `A ${kind}`;
  }

  /** Runs an API call; a refusal becomes an Error in words, and a vanished token refreshes the list. */
  async function call(fn) {
    try {
      return await fn();
    } catch (error) {
      if (error.status === 404) load();
      throw new Error(describeError(error));
    }
  }

  (async () => {
    try {
      await loadCapabilities();
      await load();
    } catch (error) {
      if (error.status !== 401) showPageError(`Could not load the page. ${describeError(error)}`);
    }
  })();

  return element;
}
