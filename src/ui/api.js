// The page's only way to the server: the public /api/v1 JSON API.
//
// The web session (tgw_…) lives in sessionStorage: it survives a reload of this tab, dies with
// the tab, is never a cookie (so no request is made with it unless this code sends it) and never
// localStorage. Token secrets are never stored anywhere: they stay in the page's memory.

const SESSION_KEY = 'tokengate.session';
const ORGANIZATION_KEY = 'tokengate.organization';

export const session = {
  get token() {
    return sessionStorage.getItem(SESSION_KEY);
  },
  set token(value) {
    sessionStorage.setItem(SESSION_KEY, value);
  },
  get organization() {
    return sessionStorage.getItem(ORGANIZATION_KEY);
  },
  set organization(id) {
    sessionStorage.setItem(ORGANIZATION_KEY, id);
  },
  clear() {
    sessionStorage.removeItem(SESSION_KEY);
    sessionStorage.removeItem(ORGANIZATION_KEY);
  },
};

/** A refused or failed request: the HTTP status and the envelope's error codes. */
export class ApiError extends Error {
  constructor(status, codes, retryAfter) {
    super(codes.join(': ') || `HTTP ${status}`);
    this.status = status;
    this.codes = codes;
    this.retryAfter = retryAfter;
  }

  has(code) {
    return this.codes.includes(code);
  }
}

let sessionEnded = () => {};

/** What to do when the server says the session is no longer valid (401). */
export function onSessionEnded(handler) {
  sessionEnded = handler;
}

/**
 * Calls `/api/v1{path}`; resolves to the envelope's `data`, or rejects with an ApiError.
 * `auth: false` for the login itself (its 401 means a wrong password, not an ended session).
 */
export async function api(method, path, { body, query, auth = true } = {}) {
  const url = new URL(`/api/v1${path}`, window.location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(key, String(value));
  }
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (auth) {
    const token = session.token;
    if (!token) {
      sessionEnded();
      throw new ApiError(401, ['Unauthorized']);
    }
    headers.Authorization = `Bearer ${token}`;
    if (session.organization) headers.Organization = session.organization;
  }
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
    });
  } catch {
    throw new ApiError(0, ['NetworkError']);
  }
  let envelope = null;
  try {
    envelope = await response.json();
  } catch {
    // Not our envelope (a proxy's error page, say): the status alone tells what happened.
  }
  if (response.status === 401 && auth) {
    session.clear();
    sessionEnded();
  }
  if (!response.ok || !envelope || envelope.success !== true) {
    const codes = Array.isArray(envelope?.errors) ? envelope.errors.map(String) : [];
    const retry = Number.parseInt(response.headers.get('Retry-After') || '', 10);
    throw new ApiError(response.status, codes, Number.isFinite(retry) ? retry : undefined);
  }
  return envelope.data;
}

/**
 * Asks the server which of these (action, resource) pairs the member may do, in batches of
 * the most one call takes. Resolves to an array of booleans in the same order.
 */
export async function mayDo(checks) {
  const batches = [];
  for (let i = 0; i < checks.length; i += 100) batches.push(checks.slice(i, i + 100));
  const answers = await Promise.all(
    batches.map((batch) => api('POST', '/auth/check', { body: { checks: batch } })),
  );
  return answers.flatMap((data) => data.results.map((r) => Boolean(r.allowed)));
}
