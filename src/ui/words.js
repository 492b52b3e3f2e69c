// What the page says: errors in words, times, permission summaries, audit events.

/** A refused request in words. `context` names the thing acted on, for not-found errors. */
export function describeError(error, context = 'token') {
  const codes = error?.codes || [];
  const [code, detail] = codes;
  switch (code) {
    case undefined:
      return `Something went wrong (HTTP ${error?.status ?? '?'}). Try again.`;
    case 'NetworkError':
      return 'Cannot reach tokengate. Check that the service is running, then try again.';
    case 'PermissionExceedsCreator':
      return `The token would have a permission you do not have: ${detail || 'unknown'}`;
    case 'PermissionExceedsGranter':
      return `That would grant a permission you do not have: ${detail || 'unknown'}`;
    case 'Forbidden':
      return 'You do not have permission to do this.';
    case 'Unauthorized':
      return 'Your session has ended. Log in again.';
    case 'EmailPasswordMismatch':
      return 'The email or password is incorrect.';
    case 'NameHasBeenUsed':
      return 'That name is used by another token in this organization. Choose another name.';
    case 'ResourceNotFound':
      return `This ${context} no longer exists: someone may have removed it. The list has been refreshed.`;
    case 'OwnerIsNotAMember':
      return 'The member who owns this personal token has left the organization, so it cannot be activated again.';
    case 'PermissionsAreImmutable':
      return "A token's permissions cannot be changed after it is created.";
    case 'TooManyRequests':
      return error.retryAfter
        ? `Too many attempts. Try again in ${error.retryAfter} seconds.`
        : 'Too many attempts. Try again in a moment.';
    case 'ServiceUnavailable':
      return 'tokengate is unavailable right now (its database may be down). Try again in a moment.';
    case 'PayloadTooLarge':
      return 'That request is too large: choose fewer permissions.';
    case 'organization_is_required':
    case 'organization_is_invalid':
      return 'Choose an organization first.';
    case 'name_is_required':
      return 'Enter a name.';
    case 'name_is_invalid':
      return 'That name is too long (at most 128 characters) or contains characters that are not allowed.';
    case 'permissions_is_required':
      return 'A service token needs at least one permission.';
    case 'expiresAt_is_invalid':
      return "The expiry date must be in the future and within the organization's longest allowed token lifetime.";
    case 'oldTokenExpiresInSeconds_is_invalid':
      return 'The old secret can keep working for at most 24 hours.';
    case 'email_is_required':
      return 'Enter your email.';
    case 'password_is_required':
      return 'Enter your password.';
    case 'InternalServerError':
      return 'tokengate failed to do this. Try again; if it keeps failing, the service log says why.';
    default:
      return fieldError(code) || `The request was refused: ${codes.join(', ')}`;
  }
}

// `permissions[0].actions_is_invalid` → "Permission 1: its actions are not valid."
function fieldError(code) {
  const m = /^(.+)_is_(required|invalid)$/.exec(code);
  if (!m) return null;
  const [, field, kind] = m;
  const perm = /^permissions\[(\d+)\]\.?(.*)$/.exec(field);
  const what = perm ? `Permission ${Number(perm[1]) + 1}: ${perm[2] || 'it'}` : field;
  return kind === 'required' ? `${what} is required.` : `${what} is not valid.`;
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const UNITS = [
  ['year', 365 * 24 * 3600],
  ['month', 30 * 24 * 3600],
  ['week', 7 * 24 * 3600],
  ['day', 24 * 3600],
  ['hour', 3600],
  ['minute', 60],
];

/** "3 minutes ago", "in 29 days", "just now". */
export function fromNow(iso, now = Date.now()) {
  const seconds = (new Date(iso).getTime() - now) / 1000;
  const abs = Math.abs(seconds);
  if (abs < 45) return 'just now';
  for (const [unit, size] of UNITS) {
    if (abs >= size) return relative.format(Math.round(seconds / size), unit);
  }
  return relative.format(Math.round(seconds / 60), 'minute');
}

/** The exact local time, for hover text. */
export function exactTime(iso) {
  return new Date(iso).toLocaleString(undefined, {
    dateStyle: 'full',
    timeStyle: 'long',
  });
}

export function shortDate(date) {
  return new Date(date).toLocaleDateString(undefined, {
    weekday: 'short',
    year: 'numeric',
    month: 'short',
    day: 'numeric',
  });
}

/** "Dec 30, 2026": short enough for a table column. */
export function tableDate(date) {
  return new Date(date).toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
}

/** What each resource type is called on the page, in the catalogue's order of first use. */
export const RESOURCE_TYPES = {
  workspace: 'Workspace',
  organization: 'Organization',
  iam: 'IAM: members, groups and policies',
  'access-token': 'Access tokens',
  'relay-proxy': 'Relay proxies',
  project: 'Projects',
  env: 'Environments',
  flag: 'Feature flags',
  segment: 'Segments',
};

/** The resources a statement applies to unless the member narrows them (FeatBit's patterns). */
export function defaultResource(resourceType) {
  switch (resourceType) {
    case 'env':
      return 'project/*:env/*';
    case 'flag':
      return 'project/*:env/*:flag/*';
    case 'segment':
      return 'project/*:env/*:segment/*';
    default:
      return `${resourceType}/*`;
  }
}

/** One line for the table: what a token may do. */
export function permissionSummary(token) {
  const statements = token.permissions;
  if (!statements) {
    return {
      text: token.type === 'Personal' ? 'Same as creator' : 'None',
      detail:
        token.type === 'Personal'
          ? 'Unscoped: the token can do whatever its creator can do, and loses what its creator loses.'
          : '',
    };
  }
  const lines = statements.map(
    (s) => `${s.effect === 'deny' ? 'Deny' : 'Allow'} ${s.actions.join(', ')} on ${s.resources.join(', ')}`,
  );
  const allowed = statements.filter((s) => s.effect !== 'deny');
  const actions = allowed.flatMap((s) => s.actions);
  let text;
  if (actions.includes('*') || allowed.some((s) => s.resourceType === '*')) {
    text = 'All actions';
  } else if (actions.length <= 2) {
    text = actions.join(', ') || 'None';
  } else {
    const types = [...new Set(allowed.map((s) => s.resourceType))];
    text = `${actions.length} actions · ${types.join(', ')}`;
  }
  return { text, detail: lines.join('\n') };
}

/** An audit event in a few words. */
export function describeEvent(event) {
  const d = event.details || {};
  switch (event.action) {
    case 'access-token.created':
      return d.type ? `Created as a ${String(d.type).toLowerCase()} token` : 'Created';
    case 'access-token.renamed':
      return d.name ? `Renamed from “${d.name.before}” to “${d.name.after}”` : 'Renamed';
    case 'access-token.activated':
      return 'Activated';
    case 'access-token.deactivated':
      return 'Deactivated';
    case 'access-token.rotated':
      return d.oldTokenExpiresAt
        ? `Secret rotated; the old one worked until ${new Date(d.oldTokenExpiresAt).toLocaleString()}`
        : 'Secret rotated; the old one stopped working at once';
    case 'access-token.deleted':
      return 'Removed';
    case 'access-token.owner-removed':
      return 'Deactivated: its owner left the organization';
    case 'access-token.leaked':
      return 'Deactivated: reported as leaked by secret scanning';
    default:
      return event.action;
  }
}
