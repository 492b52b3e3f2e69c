// Dialogs, the drawer, the overflow menu, the one-time secret and notices: built when opened,
// removed when closed, so only what is on screen is in the page.

import { h, icon, uid } from './dom.js';

/**
 * A modal dialog (native <dialog>: the rest of the page is inert, Escape closes it).
 * `actions`: [{label, kind: 'primary'|'danger'|'secondary', onClick, autofocus}] — an action's
 * onClick may return a promise: buttons wait, and a rejection's message shows in the dialog.
 * `returnFocus()` names the element to focus after closing (the opener may have been re-drawn).
 */
export function openDialog({ title, description, body = [], actions = [], drawer = false, returnFocus, onClose }) {
  const titleId = uid('dialog-title');
  const descriptionId = description ? uid('dialog-desc') : undefined;
  const opener = document.activeElement;
  const alert = h('div', { class: 'form-error', role: 'alert', hidden: true });
  const buttons = actions.map((a) =>
    h('button', {
      type: a.submit ? 'submit' : 'button',
      class: `btn btn-${a.kind || 'secondary'}`,
      autofocus: a.autofocus || undefined,
      onclick: a.submit ? undefined : () => run(a),
    }, a.label),
  );
  const form = h('form', { class: 'dialog-form', method: 'dialog', novalidate: true },
    h('header', { class: 'dialog-header' },
      h('h2', { id: titleId, text: title }),
      h('button', { type: 'button', class: 'btn-icon', 'aria-label': 'Close', onclick: () => close() }, icon('close')),
    ),
    h('div', { class: 'dialog-body' },
      description ? h('p', { id: descriptionId, class: 'dialog-description', text: description }) : null,
      body,
    ),
    h('footer', { class: 'dialog-footer' }, alert, h('div', { class: 'dialog-actions' }, buttons)),
  );
  const dialog = h('dialog', {
    class: drawer ? 'drawer' : 'modal',
    'aria-labelledby': titleId,
    'aria-describedby': descriptionId,
  }, form);

  let busy = false;
  let closed = false;
  const submitAction = actions.find((a) => a.submit);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (submitAction) run(submitAction);
  });

  async function run(action) {
    if (busy) return;
    setError(null);
    busy = true;
    for (const b of buttons) b.disabled = true;
    dialog.setAttribute('aria-busy', 'true');
    try {
      await action.onClick?.(handle);
    } catch (error) {
      setError(error?.message || String(error));
    } finally {
      busy = false;
      if (!closed) {
        for (const b of buttons) b.disabled = false;
        dialog.removeAttribute('aria-busy');
      }
    }
  }

  function setError(message) {
    alert.replaceChildren();
    if (message) {
      alert.append(icon('alert'), h('span', { text: message }));
      alert.hidden = false;
    } else {
      alert.hidden = true;
    }
  }

  function close() {
    if (closed) return;
    closed = true;
    if (dialog.open) dialog.close();
    dialog.remove();
    onClose?.();
    const target = returnFocus?.() || (opener?.isConnected ? opener : null);
    target?.focus?.();
  }

  dialog.addEventListener('close', close);
  // A click on the backdrop (outside the panel) closes, as people expect of a drawer.
  dialog.addEventListener('mousedown', (event) => {
    if (event.target === dialog && !busy) close();
  });

  const handle = { dialog, form, close, setError, get closed() { return closed; } };
  document.body.append(dialog);
  dialog.showModal();
  return handle;
}

let openMenuState = null;

/** Closes the open overflow menu, if any; focuses its button when `refocus`. */
export function closeMenu(refocus = false) {
  const state = openMenuState;
  if (!state) return;
  openMenuState = null;
  state.menu.remove();
  state.trigger.setAttribute('aria-expanded', 'false');
  document.removeEventListener('mousedown', state.outside, true);
  window.removeEventListener('resize', state.dismiss);
  window.removeEventListener('scroll', state.dismiss, true);
  if (refocus && state.trigger.isConnected) state.trigger.focus();
}

/**
 * The per-row overflow menu: a list of buttons after its trigger, placed over the page.
 * Arrow keys move between items, Escape closes it and returns to the trigger.
 * items: [{label, description, danger, onSelect}]
 */
export function toggleMenu(trigger, label, items) {
  const wasOpen = openMenuState?.trigger === trigger;
  closeMenu();
  if (wasOpen) return;
  const menu = h('div', { class: 'menu', id: uid('menu'), role: 'group', 'aria-label': label });
  const buttons = [];
  for (const item of items) {
    if (item.separator) {
      menu.append(h('hr', { class: 'menu-separator' }));
      continue;
    }
    const descId = item.description ? uid('menu-desc') : undefined;
    const button = h('button', {
      type: 'button',
      class: `menu-item${item.danger ? ' danger' : ''}`,
      'aria-label': item.label,
      'aria-describedby': descId,
      onclick: () => {
        closeMenu();
        item.onSelect();
      },
    },
    h('span', { class: 'menu-label', text: item.label }),
    item.description ? h('span', { class: 'menu-desc', id: descId, text: item.description }) : null);
    buttons.push(button);
    menu.append(button);
  }
  menu.addEventListener('keydown', (event) => {
    const i = buttons.indexOf(document.activeElement);
    const focus = (j) => buttons[(j + buttons.length) % buttons.length]?.focus({ preventScroll: true });
    if (event.key === 'ArrowDown') focus(i + 1);
    else if (event.key === 'ArrowUp') focus(i - 1);
    else if (event.key === 'Home') focus(0);
    else if (event.key === 'End') focus(buttons.length - 1);
    else if (event.key === 'Escape' || event.key === 'Tab') closeMenu(true);
    else return;
    event.preventDefault();
  });
  trigger.setAttribute('aria-controls', menu.id);
  trigger.setAttribute('aria-expanded', 'true');
  trigger.after(menu);
  // Fixed to the viewport, so a scrolling table cannot clip it; flipped up near the bottom.
  const box = trigger.getBoundingClientRect();
  const height = menu.offsetHeight;
  const below = box.bottom + 4 + height <= window.innerHeight;
  menu.style.top = `${below ? box.bottom + 4 : Math.max(8, box.top - 4 - height)}px`;
  menu.style.left = `${Math.max(8, box.right - menu.offsetWidth)}px`;
  const outside = (event) => {
    if (!menu.contains(event.target) && !trigger.contains(event.target)) closeMenu();
  };
  const dismiss = () => closeMenu();
  document.addEventListener('mousedown', outside, true);
  window.addEventListener('resize', dismiss);
  window.addEventListener('scroll', dismiss, true);
  openMenuState = { trigger, menu, outside, dismiss };
  buttons[0]?.focus({ preventScroll: true });
}

/** A short notice that reads itself to screen readers and fades away. */
export function notify(message, kind = 'success') {
  const region = document.getElementById('notices');
  if (!region) return;
  const note = h('div', { class: `notice notice-${kind}` },
    icon(kind === 'error' ? 'alert' : 'check'), h('span', { text: message }));
  region.append(note);
  setTimeout(() => note.remove(), kind === 'error' ? 10000 : 6000);
}

/**
 * The one-time secret: shown in a panel with Copy and the warning. It lives only in this panel
 * (the page's memory): never in a URL, never in web storage; reloading or leaving loses it.
 */
export function secretPanel({ heading, secret, tokenName, onDismiss }) {
  const headingId = uid('secret-heading');
  const copied = h('span', { class: 'copy-status', role: 'status', 'aria-live': 'polite' });
  const field = h('input', {
    class: 'secret-value',
    type: 'text',
    readOnly: true,
    value: secret,
    spellcheck: 'false',
    autocomplete: 'off',
    'aria-label': `Secret of ${tokenName}`,
    onfocus: (event) => event.target.select(),
  });
  const copy = h('button', {
    type: 'button',
    class: 'btn btn-primary',
    onclick: async () => {
      const ok = await copyText(secret, field);
      copied.textContent = ok ? 'Copied to the clipboard.' : 'Could not copy: select the token and copy it yourself.';
      copied.classList.toggle('failed', !ok);
    },
  }, icon('copy'), h('span', { text: 'Copy' }));
  const panel = h('section', { class: 'secret-panel', 'aria-labelledby': headingId, tabindex: '-1' },
    h('div', { class: 'secret-head' },
      icon('check'),
      h('h2', { id: headingId, text: heading }),
      h('button', {
        type: 'button', class: 'btn-icon', 'aria-label': 'Dismiss', title: 'Hide the secret for good',
        onclick: () => { panel.remove(); onDismiss?.(); },
      }, icon('close')),
    ),
    h('p', { class: 'secret-warning' },
      icon('alert'),
      h('span', {},
        h('strong', { text: 'Copy it now: you will not see it again. ' }),
        'Once you leave or reload this page the secret is hidden for good; store it somewhere safe, such as a password manager or your CI’s secret store.')),
    h('div', { class: 'secret-row' }, field, copy),
    copied,
  );
  return panel;
}

async function copyText(text, field) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // Refused (no permission, or the page lost focus): fall back to the selection.
  }
  try {
    field.focus();
    field.select();
    return document.execCommand('copy');
  } catch {
    return false;
  }
}
