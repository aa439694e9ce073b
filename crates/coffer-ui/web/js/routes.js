// Which page each address fragment shows.

import { mountsView, kvRoute } from './views/secrets.js';
import { editorRoute } from './views/editor.js';
import { shareView } from './views/share.js';
import { transitMounts, transitKeys, transitKey } from './views/transit.js';
import { rotationView } from './views/rotation.js';
import { leasesView } from './views/leases.js';
import { auditView } from './views/audit.js';
import { policiesView, policyView, capabilitiesView } from './views/policies.js';

export const routes = [
  [/^\/?$/, mountsView],
  [/^\/secrets\/?$/, mountsView],
  [/^\/kv\/(.+)$/, kvRoute],
  [/^\/kv-edit\/(.+)$/, (p, m, q) => editorRoute(p, m, q, false)],
  [/^\/kv-new\/(.+)$/, (p, m, q) => editorRoute(p, m, q, true)],
  [/^\/share\/?$/, shareView],
  [/^\/transit\/?$/, transitMounts],
  [/^\/transit\/(.+?\/)([^/]+)$/, transitKey],
  [/^\/transit\/(.+)$/, transitKeys],
  [/^\/rotation\/?$/, rotationView],
  [/^\/leases\/?$/, leasesView],
  [/^\/audit\/?$/, auditView],
  [/^\/policies\/?$/, policiesView],
  [/^\/policies\/(.+)$/, policyView],
  [/^\/capabilities\/?$/, capabilitiesView],
];
