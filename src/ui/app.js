// The page's shell: log in, choose an organization, log out; the Access tokens page inside.

import { ApiError, api, onSessionEnded, session } from './api.js';
import { closeMenu } from './dialogs.js';
import { h, icon, replace, uid } from './dom.js';
import { tokensPage } from './tokens.js';
import { describeError } from './words.js';

const root = document.getElementById('app');

onSessionEnded(() => showLogin('Your session has ended. Log in again.'));

/** Closes whatever floats over the page (dialogs, the drawer, a menu). */
function closeOverlays() {
  closeMenu();
  for (const dialog of document.querySelectorAll('dialog')) {
    if (dialog.open) dialog.close();
    dialog.remove();
  }
}

function brand() {
  return h('span', { class: 'brand' }, h('span', { class: 'brand-mark' }, icon('key')), h('span', { text: 'tokengate' }));
}

function showLogin(message) {
  closeOverlays();
  document.title = 'Log in · tokengate';
  const existing = root.querySelector('.login');
  if (existing) {
    // Several requests may find the session ended at once: one login form, the latest word.
    if (message) setMessage(existing.querySelector('.login-message'), message);
    return;
  }
  const emailId = uid('email');
  const passwordId = uid('password');
  const email = h('input', { id: emailId, type: 'email', autocomplete: 'username', required: true, autofocus: true, spellcheck: 'false' });
  const password = h('input', { id: passwordId, type: 'password', autocomplete: 'current-password', required: true });
  const error = h('div', { class: 'form-error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block' }, 'Log in');
  const note = h('p', { class: 'login-message', role: 'status' });
  if (message) setMessage(note, message);

  const form = h('form', { class: 'login-form', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: emailId, text: 'Email' }), email),
    h('div', { class: 'field' }, h('label', { for: passwordId, text: 'Password' }), password),
    error,
    submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    if (!email.value.trim() || !password.value) {
      showError(!email.value.trim() ? 'Enter your email.' : 'Enter your password.');
      (!email.value.trim() ? email : password).focus();
      return;
    }
    submit.disabled = true;
    form.setAttribute('aria-busy', 'true');
    try {
      const login = await api('POST', '/identity/login', {
        auth: false,
        body: { email: email.value.trim(), password: password.value },
      });
      session.token = login.token;
      await start();
    } catch (e) {
      showError(describeError(e));
      password.select();
    } finally {
      submit.disabled = false;
      form.removeAttribute('aria-busy');
    }
  });

  function showError(text) {
    replace(error, icon('alert'), h('span', { text }));
    error.hidden = false;
  }

  replace(root, h('main', { class: 'login' },
    h('div', { class: 'login-card' },
      brand(),
      h('h1', { text: 'Log in' }),
      h('p', { class: 'muted', text: 'Manage the API access tokens of your organization.' }),
      note,
      form)));
  email.focus();
}

function setMessage(el, text) {
  el.textContent = text;
  el.hidden = !text;
}

/** The logged-in page: top bar with the organization switch, then the Access tokens page. */
function showApp(profile) {
  closeOverlays();
  const organizations = profile.organizations || [];
  if (organizations.length === 0) {
    replace(root, h('main', { class: 'login' }, h('div', { class: 'login-card' }, brand(),
      h('h1', { text: 'No organization' }),
      h('p', { text: 'You are not a member of any organization. Ask an administrator to add you.' }),
      logoutButton())));
    return;
  }
  let organization = organizations.find((o) => o.id === session.organization) || organizations[0];
  session.organization = organization.id;

  const main = h('main', { class: 'content', id: 'main' });
  const orgControl = organizations.length > 1
    ? (() => {
      const id = uid('org');
      const sel = h('select', { id, class: 'org-select' },
        organizations.map((o) => h('option', { value: o.id, selected: o.id === organization.id }, o.name)));
      sel.addEventListener('change', () => {
        organization = organizations.find((o) => o.id === sel.value);
        session.organization = organization.id;
        mountPage();
      });
      return h('div', { class: 'org-switch' }, h('label', { for: id, text: 'Organization' }), sel);
    })()
    : h('div', { class: 'org-switch' }, h('span', { class: 'muted', text: 'Organization' }),
      h('strong', { class: 'org-name', text: organization.name }));

  const bar = h('header', { class: 'topbar' },
    h('div', { class: 'topbar-inner' },
      brand(),
      h('nav', { class: 'nav', 'aria-label': 'Sections' },
        h('span', { class: 'nav-section', text: 'Integrations' }),
        h('a', { class: 'nav-link active', href: '/', 'aria-current': 'page', text: 'Access tokens' })),
      h('div', { class: 'topbar-right' },
        orgControl,
        h('span', { class: 'user', title: profile.email }, h('span', { class: 'avatar', 'aria-hidden': 'true', text: initials(profile.name) }),
          h('span', { class: 'user-name', text: profile.name })),
        logoutButton())));

  function mountPage() {
    closeOverlays();
    document.title = `Access tokens · ${organization.name} · tokengate`;
    replace(main, tokensPage({ user: profile, organization }));
  }

  replace(root, h('a', { class: 'skip-link', href: '#main', text: 'Skip to content' }), bar, main);
  mountPage();
}

function logoutButton() {
  return h('button', {
    type: 'button',
    class: 'btn btn-secondary btn-small',
    onclick: async () => {
      try {
        await api('POST', '/identity/logout');
      } catch {
        // Ended already or unreachable: forgetting it here is what matters.
      }
      session.clear();
      showLogin('You have logged out.');
    },
  }, 'Log out');
}

function initials(name) {
  return (name || '?').split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join('');
}

async function start() {
  if (!session.token) {
    showLogin();
    return;
  }
  try {
    showApp(await api('GET', '/user/profile'));
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return; // back at the login form
    replace(root, h('main', { class: 'login' }, h('div', { class: 'login-card' }, brand(),
      h('h1', { text: 'tokengate is unavailable' }),
      h('p', { role: 'alert', text: describeError(error) }),
      h('button', { type: 'button', class: 'btn btn-primary', onclick: start }, 'Try again'))));
  }
}

start();
