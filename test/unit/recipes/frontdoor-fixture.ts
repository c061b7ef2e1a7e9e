/** A small front-door platform shared by the haproxy, keepalived, gateway and kong unit tests. */
import { ValidationError } from '../../../src/errors.js';
import { fakeSecrets, platformFrom } from '../helpers.js';
export const FRONTDOOR = `version: 1
hosts:
  - { name: h1, address: 198.18.1.11, labels: [lb] }
  - { name: h2, address: 198.18.1.12, labels: [lb] }
  - { name: h3, address: 198.18.1.13 }
loadbalancer:
  hosts: [lb]
  vip: 198.18.1.100/24
  listeners:
    - { name: http, port: 80, to: gateway }
    - { name: https, port: 443, to: gateway, tls: { internal: true, names: [api.lab] } }
gateway:
  engine: haproxy
  services:
    web: { servers: [198.18.1.13:8080], health: { path: /health } }
    orders: { consul: orders }
  routes:
    - { name: web, paths: [/web/], service: web }
    - name: orders
      hosts: [api.lab]
      paths: [/orders]
      methods: [GET, POST]
      service: orders
      plugins:
        key-auth: {}
        rate-limiting: { second: 5, minute: 100 }
        request-size-limiting: { allowed_payload_size: 2, size_unit: kilobytes }
    - name: jwt
      paths: [/jwt/]
      service: web
      plugins: { jwt: {}, cors: { origins: [https://app.lab], max_age: 60 } }
  consumers:
    - username: alice
      keyauth_credentials: [{ key: "\${file:alice.key}" }]
    - username: bob
      jwt_secrets: [{ key: bob-iss, secret: "\${file:bob.jwt}" }]
`;

export const SECRETS = { 'file:alice.key': 'k-alice', 'file:bob.jwt': 's-bob' };

/** Validation problems of a platform text as `LINE:COL: path: message`. */
export function problems(yaml: string): string[] {
  try {
    platformFrom(yaml, fakeSecrets(SECRETS));
  } catch (e) {
    if (e instanceof ValidationError) return e.diagnostics.map((d) => `${d.line}:${d.col}: ${d.message}`);
    throw e;
  }
  return [];
}
