import { describe, expect, it } from 'vitest';
import { keepalived, renderKeepalived } from '../../../recipes/keepalived.js';
import { fakeSecrets, platformFrom } from '../helpers.js';
import { FRONTDOOR, SECRETS } from './frontdoor-fixture.js';

const p = platformFrom(FRONTDOOR, fakeSecrets(SECRETS));
const host = (n: string) => p.hosts.find((h) => h.name === n)!;

describe('keepalived recipe', () => {
  it('renders one VRRP instance per LB host: priority by host order, unicast peers, the VIP, haproxy tracked', () => {
    expect(renderKeepalived(p, host('h2'))).toBe(`# rtctl: rendered for h2; do not edit
global_defs {
  router_id h2
  enable_script_security
  script_user root
}

vrrp_script chk_haproxy {
  script "/usr/bin/systemctl is-active --quiet haproxy.service"
  interval 1
  fall 2
  rise 2
}

vrrp_instance frontdoor {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority 140
  advert_int 1
  unicast_src_ip 198.18.1.12
  unicast_peer {
    198.18.1.11
  }
  virtual_ipaddress {
    198.18.1.100/24 dev eth0
  }
  track_script {
    chk_haproxy
  }
}
`);
    expect(renderKeepalived(p, host('h1'))).toContain('  priority 150\n');
  });

  it('goes on the LB hosts only: package, checked config, unit reloaded on change', () => {
    expect(keepalived.resources(p, host('h3'))).toEqual([]);
    const rs = keepalived.resources(p, host('h1'));
    expect(rs.map((r) => r.id)).toEqual(['package:keepalived', 'file:/etc/keepalived/keepalived.conf', 'unit:keepalived.service']);
    expect(rs[1]).toMatchObject({ check: 'keepalived -t -f {}', notify: ['unit:keepalived.service'] });
    expect(rs[2]).toMatchObject({ reload: true, enabled: true, started: true });
  });
});
