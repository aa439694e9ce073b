// End-to-end test of coffer's web UI in headless Chromium, against a real
// coffer server that crates/coffer/tests/web_ui.rs started and prepared.
// Environment: COFFER_ADDR, ROOT_TOKEN, ALICE_PASSWORD, FAILING_ROLE (its
// rotation path), LEASE_PREFIX, TRANSIT_KEY, OUT (screenshots and the list
// of secret strings the server's log must never hold), CHROMIUM.
import { chromium } from 'playwright-core';
import { mkdirSync, writeFileSync } from 'node:fs';
import assert from 'node:assert/strict';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const ADDR = env('COFFER_ADDR');
const ROOT = env('ROOT_TOKEN');
const ALICE_PASSWORD = env('ALICE_PASSWORD');
const FAILING_ROLE = env('FAILING_ROLE');
const LEASE_PREFIX = env('LEASE_PREFIX');
const TRANSIT_KEY = env('TRANSIT_KEY');
const JWT = env('JWT');
const OUT = env('OUT');
mkdirSync(`${OUT}/screenshots`, { recursive: true });

// Every string that must never be in a URL, browser storage or the server's
// log; written out at the end for the Rust side to check the log.
const secrets = new Set([ROOT, ALICE_PASSWORD, JWT]);
const P1 = `pw-one-${Math.random().toString(36).slice(2)}`;
const P2 = `pw-two-${Math.random().toString(36).slice(2)}`;
const SHARED_NOTE = `note-${Math.random().toString(36).slice(2)}`;
secrets.add(P1).add(P2).add(SHARED_NOTE);
const wrapTokens = new Set();
const requestUrls = [];
const cspViolations = [];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});

async function newPage(viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport, permissions: ['clipboard-read', 'clipboard-write'] });
  const page = await context.newPage();
  page.on('request', (r) => requestUrls.push(r.url()));
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) cspViolations.push(m.text());
  });
  page.on('pageerror', (e) => cspViolations.push(`page error: ${e.message}`));
  page.setDefaultTimeout(10000);
  await page.clock.install();
  pages.push(page);
  return { context, page };
}

const pages = [];
let shot = 0;
async function screenshot(page, name) {
  shot += 1;
  await page.screenshot({ path: `${OUT}/screenshots/${String(shot).padStart(2, '0')}-${name}.png`, fullPage: true });
}

/** Nothing secret in the address, browser storage or cookies. */
async function assertNoSecretInBrowser(page, where) {
  const state = await page.evaluate(() => ({
    url: location.href,
    local: localStorage.length,
    session: sessionStorage.length,
    cookie: document.cookie,
  }));
  assert.equal(state.local, 0, `${where}: localStorage holds ${state.local} item(s)`);
  assert.equal(state.session, 0, `${where}: sessionStorage holds ${state.session} item(s)`);
  assert.equal(state.cookie, '', `${where}: a cookie was set`);
  for (const s of secrets) assert.ok(!state.url.includes(s), `${where}: a secret is in the URL ${state.url}`);
}

/** Every control has a label, every button a name, and text has 4.5:1 contrast. */
async function assertAccessible(page, where) {
  const problems = await page.evaluate(() => {
    const out = [];
    const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
    for (const el of document.querySelectorAll('input, select, textarea')) {
      if (!visible(el) || el.type === 'hidden') continue;
      const named = (el.labels && el.labels.length) || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
      if (!named) out.push(`unlabelled ${el.tagName.toLowerCase()} ${el.name || ''}`);
    }
    for (const el of document.querySelectorAll('button, a[href]')) {
      if (!visible(el)) continue;
      if (!(el.getAttribute('aria-label') || el.textContent.trim())) out.push(`${el.tagName.toLowerCase()} without a name`);
    }
    const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
      const f = (v) => {
        const s = v / 255;
        return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = rgb(getComputedStyle(e).backgroundColor);
        if (c.length >= 3 && (c.length < 4 || c[3] > 0.9)) return c;
      }
      return [255, 255, 255];
    };
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    const seen = new Set();
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const el = n.parentElement;
      if (!el || seen.has(el) || !n.textContent.trim() || !visible(el)) continue;
      seen.add(el);
      const style = getComputedStyle(el);
      if (style.opacity !== '1' || el.closest('button:disabled')) continue;
      const a = lum(rgb(style.color));
      const b = lum(background(el));
      const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      if (ratio < 4.5) out.push(`contrast ${ratio.toFixed(2)} for “${n.textContent.trim().slice(0, 30)}”`);
    }
    return out;
  });
  assert.deepEqual(problems, [], `${where}: accessibility problems`);
}

async function check(page, where) {
  const text = await page.locator('body').innerText();
  assert.doesNotMatch(text, /\b(null|undefined|NaN)\b|\[object Object\]/, `${where}: a value was not formatted`);
  await assertNoSecretInBrowser(page, where);
  await assertAccessible(page, where);
  await screenshot(page, where);
}

async function loginToken(page, token) {
  await page.goto(`${ADDR}/ui/`);
  // By keyboard only: the token field has focus, Enter submits.
  await page.getByRole('textbox', { name: 'Token' }).waitFor();
  await page.keyboard.type(token);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Secrets engines' }).waitFor();
}

async function loginAlice(page) {
  let token = null;
  const seen = (r) => {
    if (r.url().includes('/v1/auth/userpass/login/alice') && r.status() === 200) {
      token = r.json().then((j) => j.auth.client_token);
    }
  };
  page.on('response', seen);
  await page.goto(`${ADDR}/ui/`);
  await page.getByRole('tab', { name: 'Username' }).click();
  await page.getByRole('textbox', { name: 'Username', exact: true }).fill('alice');
  await page.getByLabel('Password', { exact: true }).fill(ALICE_PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'Secrets engines' }).waitFor();
  page.off('response', seen);
  const t = await token;
  secrets.add(t);
  return t;
}

async function tokenWorks(token) {
  const r = await fetch(`${ADDR}/v1/auth/token/lookup-self`, { headers: { 'X-Vault-Token': token } });
  return r.status === 200;
}

async function go(page, hash) {
  await page.evaluate((h) => { location.hash = h; }, hash);
}

const steps = [];
async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
  } catch (e) {
    for (const [i, p] of pages.entries()) {
      if (!p.isClosed()) await p.screenshot({ path: `${OUT}/screenshots/failed-${i}.png`, fullPage: true }).catch(() => {});
    }
    console.log(`not ok - ${name}`);
    throw e;
  }
  steps.push(`${name}: ${Date.now() - t0} ms`);
  console.log(`ok - ${name}`);
}

const { page } = await newPage();

await step('log in with a token, by keyboard', async () => {
  await loginToken(page, ROOT);
  await check(page, 'secrets');
});

await step('create a secret; values masked until revealed', async () => {
  await go(page, '#/kv/secret/');
  await page.getByRole('link', { name: 'New secret' }).click();
  await page.getByLabel(/Path under secret\//).fill('app/db');
  const names = page.getByLabel('Field name');
  const values = page.getByLabel('Field value');
  await names.nth(0).fill('username');
  await values.nth(0).fill('app');
  await page.getByRole('button', { name: 'Add field' }).click();
  await names.nth(1).fill('password');
  await values.nth(1).fill(P1);
  await page.getByRole('button', { name: 'Create secret' }).click();
  await page.getByText('Version 1 of 1').waitFor();
  assert.ok(!(await page.content()).includes(P1), 'the value shows before it is revealed');
  await page.getByRole('button', { name: 'Reveal password' }).click();
  await page.getByText(P1).waitFor();
  await check(page, 'secret-revealed');
  await page.getByRole('button', { name: 'Hide password' }).click();
  assert.ok(!(await page.content()).includes(P1), 'the value stays after Hide');
});

/** The editor row whose field name is `name`. */
async function rowOf(page, name) {
  await page.getByLabel('Field name').first().waitFor();
  const names = await page.getByLabel('Field name').evaluateAll((els) => els.map((e) => e.value));
  const i = names.indexOf(name);
  assert.ok(i >= 0, `no field ${name} in ${names}`);
  return i;
}

await step('edit: a second version', async () => {
  await page.getByRole('link', { name: 'Edit' }).click();
  await page.getByLabel('Field value').nth(await rowOf(page, 'password')).fill(P2);
  await page.getByRole('button', { name: 'Add field' }).click();
  await page.getByLabel('Field name').nth(2).fill('port');
  await page.getByLabel('Field value').nth(2).fill('5432');
  await check(page, 'editor');
  await page.getByRole('button', { name: 'Save new version' }).click();
  await page.getByText('Version 2 of 2').waitFor();
});

await step('diff two versions', async () => {
  await page.getByRole('link', { name: 'Versions' }).click();
  await page.getByRole('button', { name: 'Compare' }).click();
  await page.getByText('2 of 3 field(s) differ.').waitFor();
  const rows = await page.locator('tbody tr').allTextContents();
  assert.ok(rows.some((r) => r.startsWith('passwordchanged')), rows.join(' | '));
  assert.ok(rows.some((r) => r.startsWith('portadded')), rows.join(' | '));
  assert.ok(!(await page.content()).includes(P1), 'diff values show before "Show values"');
  await page.getByRole('button', { name: 'Show values' }).click();
  await page.getByText(P1).waitFor();
  await page.getByText(P2).waitFor();
  await check(page, 'diff');
});

await step('roll back to version 1', async () => {
  await page.getByRole('link', { name: 'Back to versions' }).click();
  await page.locator('tr[data-version="1"]').getByRole('button', { name: 'Roll back to this' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Roll back' }).click();
  await page.getByText('Version 3 of 3').waitFor();
  await page.getByRole('button', { name: 'Reveal password' }).click();
  await page.getByText(P1).waitFor();
  await check(page, 'rolled-back');
});

await step('copy clears the clipboard after 30 s', async () => {
  await page.getByRole('button', { name: 'Copy password' }).click();
  await page.getByText(/clipboard will be cleared in 30 seconds/).waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), P1);
  await page.clock.fastForward(29000);
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), P1, 'cleared too early');
  await page.clock.fastForward(2000);
  await page.getByText('The clipboard was cleared.').waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), '');
});

await step('delete, undelete and destroy versions; custom metadata', async () => {
  await page.getByRole('link', { name: 'Versions' }).click();
  const v2 = (state) => page.locator(`tr[data-version="2"]${state ? `[data-state="${state}"]` : ''}`);
  await v2().getByRole('button', { name: 'Delete version 2' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
  await v2('deleted').waitFor();
  await v2().getByRole('button', { name: 'Undelete version 2' }).click();
  await v2('active').waitFor();
  await v2().getByRole('button', { name: 'Destroy version 2' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Destroy' }).click();
  await v2('destroyed').waitFor();
  await check(page, 'versions');
  await page.getByRole('link', { name: 'Metadata' }).click();
  await page.getByRole('button', { name: 'Add entry' }).click();
  await page.getByLabel('Metadata key').fill('owner');
  await page.getByLabel('Metadata value').fill('team-db');
  await page.getByRole('button', { name: 'Save metadata' }).click();
  await page.getByText('Metadata saved.').waitFor();
  const meta = await (await fetch(`${ADDR}/v1/secret/metadata/app/db`, { headers: { 'X-Vault-Token': ROOT } })).json();
  assert.equal(meta.data.custom_metadata.owner, 'team-db');
  assert.equal(meta.data.versions['2'].destroyed, true);
});

await step('the JSON editor keeps types and names a syntax error\'s line', async () => {
  await go(page, '#/kv-new/secret/');
  await page.getByLabel(/Path under secret\//).fill('app/json-one');
  await page.getByRole('button', { name: 'Edit as JSON' }).click();
  const json = page.getByLabel('Secret as JSON');
  await json.fill('{\n  "a": 1,\n  "nested": {"b": true}\n  "c": "x"\n}');
  await page.getByRole('button', { name: 'Create secret' }).click();
  await page.getByText(/Not saved: the JSON does not parse \(line 4\)/).waitFor();
  await json.fill('{\n  "a": 1,\n  "nested": {"b": true},\n  "c": "x"\n}');
  await page.getByRole('button', { name: 'Create secret' }).click();
  await page.getByText('Version 1 of 1').waitFor();
  await page.getByRole('button', { name: 'Reveal nested' }).click();
  await page.getByText('"b": true').waitFor();
  const r = await (await fetch(`${ADDR}/v1/secret/data/app/json-one`, { headers: { 'X-Vault-Token': ROOT } })).json();
  assert.deepEqual(r.data.data, { a: 1, nested: { b: true }, c: 'x' });
});

await step('search below a folder, and delete a secret with its versions', async () => {
  await go(page, '#/kv/secret/');
  await page.getByLabel('Filter by path').fill('json');
  await page.getByRole('button', { name: 'Search all below' }).click();
  await page.getByText(/1 match\(es\) for “json” below secret\//).waitFor();
  await page.getByRole('link', { name: 'app/json-one' }).click();
  await page.getByRole('link', { name: 'Metadata' }).click();
  await page.getByRole('button', { name: 'Delete the secret and all its versions' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete everything' }).click();
  await page.getByRole('heading', { name: 'secret/app/' }).waitFor();
  const r = await fetch(`${ADDR}/v1/secret/metadata/app/json-one`, { headers: { 'X-Vault-Token': ROOT } });
  assert.equal(r.status, 404);
});

let link;
await step('share once', async () => {
  await go(page, '#/kv/secret/app/db');
  await page.getByRole('button', { name: 'Share once' }).click();
  await page.getByLabel('Link expires after').selectOption('1h');
  await page.getByRole('button', { name: 'Create link' }).click();
  link = (await page.locator('[data-share-link]').textContent()).trim();
  assert.match(link, /\/ui\/open#\S+$/);
  wrapTokens.add(link.split('#')[1]);
  await screenshot(page, 'share-created');
  await page.getByRole('dialog').getByRole('button', { name: 'Close' }).click();
});

await step('the recipient opens the link once, in another browser context', async () => {
  const { page: other, context } = await newPage();
  await other.goto(link);
  await other.getByRole('heading', { name: 'A secret was shared with you' }).waitFor();
  await other.getByRole('button', { name: 'Open the secret' }).click();
  await other.getByText('Opened. This link no longer works.').waitFor();
  assert.ok(!other.url().includes('#'), `the token stays in the address: ${other.url()}`);
  await other.getByRole('button', { name: 'Reveal password' }).click();
  await other.getByText(P1).waitFor();
  await check(other, 'share-opened');
  await context.close();
  const { page: third, context: c3 } = await newPage();
  await third.goto(link);
  await third.getByText(/This link was already opened, at/).waitFor();
  await third.getByText(/someone else may have seen the secret/).waitFor();
  assert.equal(await third.getByRole('button', { name: 'Open the secret' }).count(), 0);
  await check(third, 'share-refused');
  await c3.close();
});

await step('share a typed value', async () => {
  await go(page, '#/share');
  await page.getByLabel('Secret to share').fill(SHARED_NOTE);
  await page.getByRole('button', { name: 'Create link' }).click();
  const l = (await page.locator('[data-share-link]').textContent()).trim();
  wrapTokens.add(l.split('#')[1]);
  await check(page, 'share-page');
  const { page: other, context } = await newPage();
  await other.goto(l);
  await other.getByRole('button', { name: 'Open the secret' }).click();
  await other.getByRole('button', { name: 'Reveal value' }).click();
  await other.getByText(SHARED_NOTE).waitFor();
  await context.close();
});

await step('transit: rotate, encrypt, decrypt', async () => {
  await go(page, '#/transit');
  await page.getByRole('link', { name: TRANSIT_KEY }).click();
  await page.getByRole('heading', { name: `Key ${TRANSIT_KEY}` }).waitFor();
  await page.getByRole('button', { name: 'Rotate key' }).click();
  await page.getByText('Rotated: new encryptions').waitFor();
  await page.getByRole('row', { name: /^2 / }).waitFor();
  await page.getByLabel('Plaintext').fill('hello from the browser');
  await page.getByRole('button', { name: 'Encrypt ↓' }).click();
  await page.getByText('Encrypted: the ciphertext').waitFor();
  assert.match(await page.getByLabel('Ciphertext').inputValue(), /^vault:v2:/);
  await page.getByLabel('Plaintext').fill('');
  await page.getByRole('button', { name: 'Decrypt ↑' }).click();
  await page.getByText('Decrypted: the plaintext').waitFor();
  assert.equal(await page.getByLabel('Plaintext').inputValue(), 'hello from the browser');
  await check(page, 'transit');
});

await step('the rotation dashboard shows the failing static role', async () => {
  await go(page, '#/rotation');
  const row = page.locator(`tr[data-state="failing"]`, { hasText: FAILING_ROLE });
  await row.waitFor();
  assert.match(await row.textContent(), /failing/);
  await page.getByText(/1 failing/).first().waitFor();
  await check(page, 'rotation');
});

await step('leases by prefix: renew and revoke', async () => {
  await go(page, `#/leases?prefix=${encodeURIComponent(LEASE_PREFIX)}`);
  const rows = page.locator('tr[data-lease]');
  await rows.first().waitFor();
  assert.equal(await rows.count(), 2);
  await rows.first().getByRole('button', { name: 'Renew' }).click();
  await page.getByText(/^Renewed /).waitFor();
  await page.locator('tr[data-lease]').nth(1).getByRole('button', { name: 'Revoke' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
  await page.getByText(/^Revoked /).waitFor();
  await page.waitForFunction(() => document.querySelectorAll('tr[data-lease]').length === 1);
  await check(page, 'leases');
});

await step('policies: a parse error is marked on its line', async () => {
  await go(page, '#/policies/app-reader');
  const editor = page.getByLabel('Policy app-reader (HCL)');
  const good = await editor.inputValue();
  await editor.fill('path "secret/data/app/*" {\n  capabilities = ["read"]\n  capabilities = [read\n}\n');
  await page.getByRole('button', { name: 'Save policy' }).click();
  const error = page.getByText(/^Not saved: .*line \d+/);
  await error.waitFor();
  const marked = await page.locator('.gutter .bad').textContent();
  const said = Number((await error.textContent()).match(/line (\d+)/)[1]);
  assert.equal(Number(marked.trim()), said);
  assert.ok(said >= 3 && said <= 4, `the error is reported on line ${said}`);
  await check(page, 'policy-error');
  await editor.fill(good);
  await page.getByRole('button', { name: 'Save policy' }).click();
  await page.getByText('Saved policy app-reader.').waitFor();
});

await step('capabilities of a token on a path', async () => {
  await go(page, '#/capabilities');
  await page.getByLabel('Paths, one per line').fill('secret/data/app/db\nsys/mounts');
  await page.getByRole('button', { name: 'Check' }).click();
  await page.locator('tr[data-path="secret/data/app/db"]', { hasText: 'root' }).waitFor();
  await check(page, 'capabilities');
});

let aliceToken;
await step('a restricted user sees what the policy allows, and a clear message otherwise', async () => {
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('heading', { name: 'Log in to coffer' }).waitFor();
  assert.ok(await tokenWorks(ROOT), 'logging out of a pasted token revoked it');
  aliceToken = await loginAlice(page);
  await go(page, '#/kv/secret/');
  await page.getByText('You may not list secret/').waitFor();
  await check(page, 'restricted-list');
  await go(page, '#/kv/secret/app/db');
  await page.getByRole('button', { name: 'Reveal password' }).click();
  await page.getByText(P1).waitFor();
  await go(page, '#/kv/secret/ops/root');
  await page.getByText('Your policies do not let you read secret/ops/root.').waitFor();
  await check(page, 'restricted-denied');
  await go(page, '#/policies');
  await page.getByText(/Permission denied: your policies do not allow this/).waitFor();
});

await step('logging out revokes the session token', async () => {
  assert.ok(await tokenWorks(aliceToken));
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('heading', { name: 'Log in to coffer' }).waitFor();
  assert.ok(!(await tokenWorks(aliceToken)), 'the token still works after logout');
});

await step('15 minutes idle logs out and revokes', async () => {
  const t = await loginAlice(page);
  await page.clock.fastForward('14:00');
  assert.ok(await tokenWorks(t));
  await page.clock.fastForward('01:30');
  await page.getByText('You were logged out after 15 minutes without activity.').waitFor();
  await page.waitForFunction(() => true);
  for (let i = 0; i < 50 && await tokenWorks(t); i += 1) await new Promise((r) => setTimeout(r, 100));
  assert.ok(!(await tokenWorks(t)), 'the idle session token still works');
  await screenshot(page, 'idle-logout');
});

await step('log in with a JWT from an identity provider, for a role', async () => {
  let token = null;
  const seen = (r) => {
    if (r.url().endsWith('/v1/auth/jwt/login') && r.status() === 200) token = r.json().then((j) => j.auth.client_token);
  };
  page.on('response', seen);
  await page.goto(`${ADDR}/ui/`);
  await page.getByRole('tab', { name: 'JWT / OIDC' }).click();
  await page.getByRole('textbox', { name: 'Role' }).fill('ui');
  await page.getByRole('textbox', { name: 'JWT' }).fill(JWT);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByText(/^Signed in as .*bob@example\.com$/).waitFor();
  page.off('response', seen);
  const t = await token;
  secrets.add(t);
  await go(page, '#/kv/secret/app/db');
  await page.getByRole('button', { name: 'Reveal password' }).click();
  await page.getByText(P1).waitFor();
  await check(page, 'jwt-login');
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('heading', { name: 'Log in to coffer' }).waitFor();
  assert.ok(!(await tokenWorks(t)), 'the JWT session token still works after logout');
});

await step('who read the secret, from the audit log', async () => {
  await loginToken(page, ROOT);
  await go(page, '#/kv/secret/app/db');
  await page.getByRole('link', { name: 'Who read it' }).click();
  await page.getByRole('heading', { name: /request\(s\) on secret\/data\/app\/db/ }).waitFor();
  const who = await page.locator('tbody th').allTextContents();
  assert.ok(who.some((w) => w.startsWith('root')), who.join(' | '));
  assert.ok(who.some((w) => w.startsWith('userpass-alice')), who.join(' | '));
  await check(page, 'audit');
  // A window before anything happened finds nothing.
  await go(page, `#/audit?path=secret/data/app/db&until=${encodeURIComponent('2020-01-01T00:00:00.000Z')}`);
  await page.getByText('Nothing matched.').waitFor();
});

await step('phone width: nothing scrolls sideways', async () => {
  const { page: phone, context } = await newPage({ width: 375, height: 740 });
  await loginToken(phone, ROOT);
  for (const hash of ['#/secrets', '#/kv/secret/app/db', '#/kv/secret/app/db?tab=versions', '#/rotation', '#/share', '#/policies/app-reader']) {
    await go(phone, hash);
    await phone.locator('main h1').waitFor();
    await phone.waitForTimeout(100);
    const [sw, w] = await phone.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    assert.ok(sw <= w, `${hash}: the page is ${sw}px wide in a ${w}px window`);
  }
  await check(phone, 'phone');
  await context.close();
});

for (const url of requestUrls) {
  for (const s of [...secrets, ...wrapTokens]) assert.ok(!url.includes(s), `a request URL carries a secret: ${url}`);
}
assert.deepEqual(cspViolations, [], 'the page broke its Content-Security-Policy or threw');
writeFileSync(`${OUT}/secrets.json`, JSON.stringify([...secrets, ...wrapTokens]));
writeFileSync(`${OUT}/steps.txt`, `${steps.join('\n')}\n`);
await browser.close();
console.log(`all ${steps.length} steps passed; screenshots in ${OUT}/screenshots`);
