import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../src/errors.js';
import { formatDiagnostics } from '../../../src/config/load.js';
import { fakeSecrets, platformFrom, problemsOf } from '../helpers.js';

const problems = problemsOf;

const HOSTS = `version: 1
hosts:
  - { name: h1, address: 198.18.1.11, labels: [app] }
  - { name: h2, address: 198.18.1.12 }
`;

describe('validatePlatform: schema', () => {
  it('accepts a minimal platform and applies defaults', () => {
    const p = platformFrom(HOSTS);
    expect(p.hosts.map((h) => [h.name, h.user, h.port, h.become, h.connectTimeoutMs])).toEqual([
      ['h1', 'root', 22, false, 10000],
      ['h2', 'root', 22, false, 10000],
    ]);
  });

  it('inherits defaults; a non-root user becomes root through sudo', () => {
    const p = platformFrom(`version: 1
defaults: { user: deploy, port: 2222 }
hosts:
  - { name: h1, address: 198.18.1.11 }
  - { name: h2, address: 198.18.1.12, port: 22, become: false }
`);
    expect(p.hosts.map((h) => [h.user, h.port, h.become])).toEqual([['deploy', 2222, true], ['deploy', 22, false]]);
  });

  it('reports every schema problem with its line and column', () => {
    expect(problems(`version: 1
hosts:
  - name: h1
    address: 198.18.1.11
    port: "22"
    lables: [x]
  - { name: H2, address: 198.18.1.12 }
files:
  - { path: etc/motd, content: hi, mode: "999" }
`)).toEqual([
      '5:11: hosts/0/port: must be an integer, not string',
      '6:5: hosts/0/lables: unknown key `lables`',
      '7:13: hosts/1/name: "H2" must be a lower-case name (letters, digits, `.`, `_`, `-`)',
      '9:13: files/0/path: "etc/motd" must be an absolute path (starting with /)',
      '9:42: files/0/mode: "999" must be an octal mode in quotes, e.g. "0644"',
    ]);
  });

  it('points at the mapping that lacks a required key', () => {
    expect(problems(`version: 1
hosts:
  - { name: h1 }
`)).toEqual(['3:5: hosts/0/address: missing required key `address`']);
  });

  it('reports YAML syntax errors at their position', () => {
    expect(problems(`version: 1
hosts:
  - { name: h1, address: 198.18.1.11
`)[0]).toMatch(/^4:1: YAML syntax: /);
  });

  it('rejects a wrong format version', () => {
    expect(problems(`version: 2\nhosts: [{ name: h1, address: a }]\n`)).toEqual(['1:10: version: expected 1']);
  });
});

describe('validatePlatform: cross-references', () => {
  it('reports duplicate names, unknown selectors, artifacts and units, and unresolved secrets together', () => {
    expect(problems(`${HOSTS}  - { name: h1, address: 198.18.1.13 }
artifacts:
  hello: { path: nothere/hello, sha256: ${'a'.repeat(64)}, version: 1.0.0 }
files:
  - { path: /etc/a, content: x, hosts: [nope] }
  - { path: /etc/b, content: "\${env:MISSING_TOKEN}", notify: [hello.servic] }
units:
  - { name: hello.service, content: "[Service]" }
releases:
  - { artifact: helo, dir: /opt/hello }
`)).toEqual([
      '5:13: hosts/2/name: duplicate host name "h1" (first at hosts/0)',
      '7:18: artifacts/hello/path: file not found: nothere/hello',
      '9:41: files/0/hosts/0: unknown host or label "nope"',
      '10:30: files/1/content: secret ${env:MISSING_TOKEN}: environment variable MISSING_TOKEN is not set',
      '10:63: files/1/notify/0: unknown unit "hello.servic" (did you mean "hello.service"?)',
      '14:17: releases/0/artifact: unknown artifact "helo" (did you mean "hello"?)',
    ]);
  });

  it('finds two things on one port of one host, and the same file twice on a host', () => {
    expect(problems(`${HOSTS}files:
  - { path: /etc/a, content: x }
  - { path: /etc/a, content: y, hosts: [h2] }
units:
  - { name: a.service, content: x, ports: [8080] }
  - { name: b.service, content: y, ports: [8080], hosts: [app] }
`)).toEqual([
      '7:5: files/1: file:/etc/a is also declared at files/0 for host h2',
      '10:44: units/1/ports/0: port 8080 on host h1 is already used by units/0',
    ]);
  });

  it('accepts secrets that resolve, and marks their files sensitive with mode 0600', async () => {
    const p = platformFrom(`${HOSTS}files:\n  - { path: /etc/t, content: "\${env:TOKEN}" }\n`, fakeSecrets({ 'env:TOKEN': 's3cret-value' }));
    const { desiredResources } = await import('../../../recipes/index.js');
    const r = desiredResources(p).get('h1')!.find((x) => x.id === 'file:/etc/t');
    expect(r).toMatchObject({ sensitive: true, mode: '0600', content: '${env:TOKEN}' });
  });

  it('formats diagnostics as FILE:LINE:COL with the source line and a caret', () => {
    try {
      platformFrom(`version: 1\nhosts:\n  - { name: h1, address: 198.18.1.11, port: x }\n`);
      expect.unreachable();
    } catch (e) {
      expect(formatDiagnostics((e as ValidationError).diagnostics)).toBe(
        'platform.yaml:3:45: hosts/0/port: must be an integer, not string\n' +
        '  3 |   - { name: h1, address: 198.18.1.11, port: x }\n' +
        '    |                                             ^',
      );
    }
  });
});
