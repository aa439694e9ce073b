// The session: one token, held in this module's memory only (never in
// localStorage, sessionStorage, a cookie or the URL), so closing or
// reloading the tab ends it. Logging out revokes the tokens the UI got by
// logging in; inactivity logs out.

export const IDLE_MS = 15 * 60 * 1000;

let current = null;
let idleTimer = null;
let expiryTimer = null;
const listeners = new Set();

export const session = {
  get token() {
    return current ? current.token : null;
  },
  get info() {
    return current;
  },
  /** Called with (reason) when the session ends. */
  onEnd(fn) {
    listeners.add(fn);
  },
  expired() {
    end('Your session expired. Log in again.');
  },
};

/**
 * Starts a session. `auth`: {token, accessor, displayName, policies, ttl
 * (seconds, 0 for none), revokeOnLogout}.
 */
export function start(auth) {
  current = { ...auth, started: Date.now() };
  touch();
  clearTimeout(expiryTimer);
  if (auth.ttl > 0) expireAt(Date.now() + auth.ttl * 1000);
}

// Timers take at most 2^31-1 ms (about 24 days); a token may live longer.
const MAX_TIMER = 2 ** 31 - 1;

function expireAt(t) {
  const left = t - Date.now();
  if (left <= 0) {
    end('Your token expired. Log in again.');
    return;
  }
  expiryTimer = setTimeout(() => expireAt(t), Math.min(left, MAX_TIMER));
}

/** Activity: the idle clock starts again. */
export function touch() {
  if (!current) return;
  clearTimeout(idleTimer);
  idleTimer = setTimeout(() => logout(`You were logged out after ${IDLE_MS / 60000} minutes without activity.`), IDLE_MS);
}

function end(reason) {
  if (!current) return;
  current = null;
  clearTimeout(idleTimer);
  clearTimeout(expiryTimer);
  for (const fn of listeners) fn(reason);
}

/** Logs out: revokes the token if the UI made it, then forgets it. */
export async function logout(reason = 'You are logged out.') {
  const s = current;
  if (!s) return;
  if (s.revokeOnLogout) {
    try {
      await fetch('/v1/auth/token/revoke-self', {
        method: 'POST', headers: { 'X-Vault-Token': s.token, 'X-Vault-Request': 'true' }, cache: 'no-store', credentials: 'omit',
      });
    } catch {
      // Forgetting the token still ends the session here; it expires on its own.
    }
  }
  end(reason);
}

for (const ev of ['pointerdown', 'keydown', 'wheel', 'touchstart']) {
  window.addEventListener(ev, () => touch(), { passive: true, capture: true });
}
