// The "Add access token" drawer: Name, Type, Expiry and the permissions picker; Save hands the
// new token (with its one-time secret) to `onCreated`.

import { api, mayDo } from './api.js';
import { openDialog } from './dialogs.js';
import { h, debounce, replace, uid } from './dom.js';
import { RESOURCE_TYPES, defaultResource, describeError, shortDate } from './words.js';

const DAY = 24 * 3600 * 1000;
const EXPIRY_PRESETS = [7, 30, 60, 90];

const TYPE_HINTS = {
  Personal:
    'Acts as you: it can never do more than you can, loses a permission the moment you do, and stops working if you leave the organization.',
  Service:
    'Independent of you: its permissions are fixed now, can never exceed yours, and stay the same if your permissions change. For long-lived integrations.',
};

let catalogue = null;

/** The permission catalogue, fetched once per page load. */
async function loadCatalogue() {
  catalogue ??= api('GET', '/permissions').catch((error) => {
    catalogue = null;
    throw error;
  });
  return catalogue;
}

/**
 * caps: {personal, service} — which types the member may create.
 * onCreated(token): the created token view plus `token`, its secret.
 */
export function openAddToken({ caps, onCreated, returnFocus }) {
  // ---- Name, with a debounced "is it taken?" check.
  const nameId = uid('token-name');
  const nameHintId = uid('token-name-hint');
  const nameHintText = 'Say where it is used, such as “ci-deploy” or “laptop”.';
  const name = h('input', {
    id: nameId,
    type: 'text',
    maxlength: '128',
    autocomplete: 'off',
    spellcheck: 'false',
    required: true,
    autofocus: true,
    'aria-describedby': nameHintId,
  });
  const nameHint = h('p', { id: nameHintId, class: 'field-hint', 'aria-live': 'polite', text: nameHintText });
  let nameSeq = 0;
  const setNameUsed = (used) => {
    name.setAttribute('aria-invalid', used ? 'true' : 'false');
    nameHint.classList.toggle('field-error', used);
    nameHint.textContent = used ? 'That name is used by another token: choose another.' : nameHintText;
  };
  const checkName = debounce(async () => {
    const value = name.value.trim();
    const seq = ++nameSeq;
    if (!value) return setNameUsed(false);
    try {
      const used = await api('GET', '/access-tokens/is-name-used', { query: { name: value } });
      if (seq === nameSeq) setNameUsed(used === true);
    } catch {
      // The check is a courtesy; Save reports a taken name anyway.
    }
  }, 300);
  name.addEventListener('input', () => {
    nameSeq += 1;
    checkName();
  });

  // ---- Type.
  const typeId = uid('token-type');
  const typeHintId = uid('token-type-hint');
  const type = h('select', { id: typeId, 'aria-describedby': typeHintId },
    h('option', { value: 'Personal', disabled: !caps.personal }, 'Personal'),
    h('option', { value: 'Service', disabled: !caps.service }, 'Service'),
  );
  type.value = caps.personal ? 'Personal' : 'Service';
  const typeHint = h('p', { id: typeHintId, class: 'field-hint' });

  // ---- Expiry: presets, a date, or none.
  const expiryId = uid('token-expiry');
  const expiryHintId = uid('token-expiry-hint');
  const expiry = h('select', { id: expiryId, 'aria-describedby': expiryHintId },
    EXPIRY_PRESETS.map((days) => h('option', { value: String(days) }, `${days} days`)),
    h('option', { value: 'custom' }, 'Custom date…'),
    h('option', { value: 'none' }, 'No expiration'),
  );
  expiry.value = '30';
  const dateId = uid('token-expiry-date');
  const tomorrow = new Date(Date.now() + DAY);
  const date = h('input', { id: dateId, type: 'date', min: isoDate(tomorrow) });
  const dateField = h('div', { class: 'field field-inline', hidden: true },
    h('label', { for: dateId, text: 'Expires on' }), date);
  const expiryHint = h('p', { id: expiryHintId, class: 'field-hint' });

  // ---- Permissions: all of the member's (personal only), or chosen ones.
  const scopeName = uid('scope');
  const scopeAll = h('input', { type: 'radio', name: scopeName, value: 'all', checked: true });
  const scopeSome = h('input', { type: 'radio', name: scopeName, value: 'some' });
  const scopeChoice = h('fieldset', { class: 'choice' },
    h('legend', { class: 'visually-hidden', text: 'Token permissions' }),
    h('label', { class: 'choice-option' }, scopeAll,
      h('span', {}, h('strong', { text: 'All of my permissions' }),
        h('span', { class: 'choice-desc', text: 'The token can do what you can do, now and later.' }))),
    h('label', { class: 'choice-option' }, scopeSome,
      h('span', {}, h('strong', { text: 'Only the permissions I choose' }),
        h('span', { class: 'choice-desc', text: 'Least privilege: recommended for integrations.' }))),
  );
  const permissionsIntro = h('p', { class: 'field-hint' });
  const pickerSlot = h('div', { class: 'picker-slot' });
  const picker = createPicker();

  function sync() {
    const service = type.value === 'Service';
    typeHint.textContent = TYPE_HINTS[type.value];
    scopeChoice.hidden = service;
    permissionsIntro.textContent = service
      ? 'Required. Choose what this token may do: a service token’s permissions are fixed when it is created.'
      : 'Optional. A personal token can be limited to some of your permissions.';
    const showPicker = service || scopeSome.checked;
    if (showPicker && !pickerSlot.firstChild) pickerSlot.append(picker.element);
    if (!showPicker) pickerSlot.replaceChildren();
    dateField.hidden = expiry.value !== 'custom';
    expiryHint.classList.remove('field-warning');
    const at = expiresAt();
    if (expiry.value === 'none') {
      expiryHint.textContent = 'No expiry date (unless the organization sets a longest token lifetime). Tokens that expire limit the damage of a leak.';
      expiryHint.classList.add('field-warning');
    } else if (at) {
      expiryHint.textContent = `The token will expire on ${shortDate(at)}.`;
    } else {
      expiryHint.textContent = 'Choose the day the token stops working.';
    }
  }

  function expiresAt() {
    if (expiry.value === 'none') return null;
    if (expiry.value === 'custom') {
      if (!date.value) return null;
      // The end of the chosen day, in the member's time zone.
      return new Date(`${date.value}T23:59:59`);
    }
    return new Date(Date.now() + Number(expiry.value) * DAY);
  }

  for (const el of [type, expiry, date, scopeAll, scopeSome]) el.addEventListener('change', sync);
  date.addEventListener('input', sync);
  sync();

  const body = [
    h('div', { class: 'field' }, h('label', { for: nameId, text: 'Name' }), name, nameHint),
    h('div', { class: 'field' }, h('label', { for: typeId, text: 'Type' }), type, typeHint),
    h('div', { class: 'field' }, h('label', { for: expiryId, text: 'Expiry' }), expiry, dateField, expiryHint),
    h('div', { class: 'field' },
      h('h3', { class: 'field-title', text: 'Permissions' }),
      permissionsIntro, scopeChoice, pickerSlot),
  ];

  async function save(handle) {
    const tokenName = name.value.trim();
    if (!tokenName) {
      name.focus();
      throw new Error('Enter a name for the token.');
    }
    const request = { name: tokenName, type: type.value };
    if (type.value === 'Service' || scopeSome.checked) {
      const statements = picker.statements();
      if (statements === null) throw new Error('The permissions are still loading: try again in a moment.');
      if (!statements.length) {
        throw new Error(type.value === 'Service'
          ? 'Choose at least one permission: a service token needs one.'
          : 'Choose at least one permission, or give the token all of your permissions.');
      }
      request.permissions = statements;
    }
    if (expiry.value === 'custom' && !date.value) {
      date.focus();
      throw new Error('Choose the day the token expires, or another expiry.');
    }
    const at = expiresAt();
    if (at) request.expiresAt = at.toISOString();
    let created;
    try {
      created = await api('POST', '/access-tokens', { body: request });
    } catch (error) {
      if (error.has?.('NameHasBeenUsed')) setNameUsed(true);
      throw new Error(describeError(error));
    }
    handle.close();
    onCreated(created);
  }

  openDialog({
    title: 'Add access token',
    drawer: true,
    body,
    returnFocus,
    actions: [
      { label: 'Cancel', kind: 'secondary', onClick: (handle) => handle.close() },
      { label: 'Save', kind: 'primary', submit: true, onClick: save },
    ],
  });
}

/**
 * The permissions picker: the catalogue grouped by resource type, each action with its
 * description; actions the member does not hold on the type's usual resources are disabled,
 * as the server would refuse them (it decides anyway).
 */
function createPicker() {
  const noteId = uid('picker-note');
  const element = h('div', { class: 'picker', 'aria-busy': 'true' },
    h('p', { class: 'picker-loading', text: 'Loading permissions…' }));
  let groups = null;
  const count = h('p', { class: 'picker-count', 'aria-live': 'polite' });

  const updateCount = () => {
    const n = groups ? groups.reduce((sum, g) => sum + g.boxes.filter((b) => b.checked).length, 0) : 0;
    count.textContent = n === 0 ? 'No permission selected.' : `${n} permission${n === 1 ? '' : 's'} selected.`;
    for (const g of groups || []) g.resourcesField.hidden = !g.boxes.some((b) => b.checked);
  };

  (async () => {
    try {
      const actions = await loadCatalogue();
      const held = await mayDo(actions.map((a) => ({ action: a.name, resource: defaultResource(a.resourceType) })));
      const byType = new Map();
      actions.forEach((action, i) => {
        if (!byType.has(action.resourceType)) byType.set(action.resourceType, []);
        byType.get(action.resourceType).push({ ...action, held: held[i] });
      });
      // What the member can grant first; types they hold nothing of at the end.
      groups = [...byType]
        .map(([resourceType, list]) => group(resourceType, list))
        .sort((a, b) => Number(!a.list.some((x) => x.held)) - Number(!b.list.some((x) => x.held)));
      const anyMissing = groups.some((g) => g.list.some((a) => !a.held));
      replace(element,
        anyMissing
          ? h('p', { id: noteId, class: 'picker-note', text: 'Greyed-out actions are ones you do not have, so you cannot give them to a token.' })
          : null,
        groups.map((g) => g.element),
        count);
      element.removeAttribute('aria-busy');
      updateCount();
    } catch (error) {
      element.removeAttribute('aria-busy');
      replace(element, h('p', { class: 'form-error', role: 'alert', text: `Could not load the permissions: ${describeError(error)}` }));
    }
  })();

  function group(resourceType, list) {
    const title = RESOURCE_TYPES[resourceType] || resourceType;
    const grantable = list.filter((a) => a.held);
    const boxes = [];
    const rows = list.map((action) => {
      const labelId = uid('perm');
      const descId = uid('perm-desc');
      const box = h('input', {
        type: 'checkbox',
        value: action.name,
        disabled: !action.held,
        'aria-labelledby': labelId,
        'aria-describedby': action.held ? descId : `${descId} ${noteId}`,
        onchange: updateCount,
      });
      boxes.push(box);
      return h('label', { class: `perm${action.held ? '' : ' perm-unavailable'}` },
        box,
        h('span', { class: 'perm-text' },
          h('code', { id: labelId, class: 'perm-name', text: action.name }),
          h('span', { id: descId, class: 'perm-desc', text: action.description })));
    });
    const resourcesId = uid('resources');
    const resources = h('input', {
      id: resourcesId,
      type: 'text',
      value: defaultResource(resourceType),
      spellcheck: 'false',
      autocomplete: 'off',
      class: 'mono',
    });
    const resourcesField = h('div', { class: 'perm-resources', hidden: true },
      h('label', { for: resourcesId, text: 'On resources' }),
      resources,
      h('p', { class: 'field-hint', text: `A resource pattern; * matches anything. Narrow it, e.g. ${narrowExample(resourceType)}.` }));
    const selectAll = grantable.length > 1
      ? h('button', {
        type: 'button',
        class: 'btn-link',
        'aria-label': `Select all ${title}`,
        onclick: () => {
          const all = boxes.filter((b) => !b.disabled);
          const on = !all.every((b) => b.checked);
          for (const b of all) b.checked = on;
          updateCount();
        },
      }, 'Select all')
      : null;
    const element = h('fieldset', { class: 'perm-group' },
      h('legend', {},
        h('span', { class: 'perm-group-title', text: title }),
        h('code', { class: 'perm-group-type', text: resourceType })),
      h('div', { class: 'perm-group-tools' },
        h('span', { class: 'perm-group-count', text: grantable.length ? `${grantable.length} of ${list.length} available` : 'You have none of these' }),
        selectAll),
      rows,
      resourcesField);
    return { resourceType, list, boxes, resources, resourcesField, element };
  }

  return {
    element,
    /** The chosen statements, or null while the catalogue is loading. */
    statements() {
      if (!groups) return null;
      return groups
        .map((g) => ({ g, actions: g.boxes.filter((b) => b.checked).map((b) => b.value) }))
        .filter(({ actions }) => actions.length)
        .map(({ g, actions }) => ({
          resourceType: g.resourceType,
          effect: 'allow',
          actions,
          resources: [g.resources.value.trim() || defaultResource(g.resourceType)],
        }));
    },
  };
}

function narrowExample(resourceType) {
  switch (resourceType) {
    case 'flag':
      return 'project/web:env/prod:flag/*';
    case 'segment':
      return 'project/web:env/prod:segment/*';
    case 'env':
      return 'project/web:env/*';
    case 'project':
      return 'project/web';
    default:
      return `${resourceType}/<key>`;
  }
}

function isoDate(d) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}
