/**
 * keepalived (Debian's package) on the load-balancer hosts: one VRRP instance holding the virtual IP, with a
 * `vrrp_script` tracking haproxy.service, so that when HAProxy dies on the holder the instance goes to FAULT and
 * another host takes the address. Peers talk unicast (no reliance on multicast on the segment).
 */
import type { Host, Platform } from '../src/model/platform.js';
import { makeId, type Resource } from '../src/model/resources.js';
import type { Recipe } from './types.js';
import { lbHosts, parseVip } from './haproxy.js';

export const KEEPALIVED_CONF = '/etc/keepalived/keepalived.conf';
const UNIT = 'keepalived.service';

export function renderKeepalived(p: Platform, host: Host): string {
  const lb = p.doc.loadbalancer!;
  const hosts = lbHosts(p);
  const i = hosts.findIndex((h) => h.name === host.name);
  const iface = lb.interface ?? 'eth0';
  const { address, prefix } = parseVip(lb.vip);
  // Priorities fall in host order, so the first load-balancer host holds the address when all are healthy.
  const priority = 150 - i * 10;
  return `# rtctl: rendered for ${host.name}; do not edit
global_defs {
  router_id ${host.name}
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
  interface ${iface}
  virtual_router_id ${lb.virtual_router_id ?? 51}
  priority ${priority}
  advert_int 1
  unicast_src_ip ${host.address}
  unicast_peer {
${hosts.filter((h) => h.name !== host.name).map((h) => `    ${h.address}`).join('\n')}
  }
  virtual_ipaddress {
    ${address}/${prefix} dev ${iface}
  }
  track_script {
    chk_haproxy
  }
}
`;
}

export const KEEPALIVED_UNIT = `[Unit]
Description=keepalived VRRP (rtctl)
After=network-online.target haproxy.service
Wants=network-online.target

[Service]
Type=simple
ExecStart=/usr/sbin/keepalived --dont-fork --log-console -f ${KEEPALIVED_CONF}
ExecReload=/bin/kill -HUP $MAINPID
KillMode=process
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
`;

export const keepalived: Recipe = {
  name: 'keepalived',
  resources(p: Platform, host: Host): Resource[] {
    if (!p.doc.loadbalancer || !lbHosts(p).some((h) => h.name === host.name)) return [];
    const origin = { path: 'loadbalancer' };
    const unitId = makeId('unit', UNIT);
    return [
      { type: 'package', id: makeId('package', 'keepalived'), name: 'keepalived', origin },
      {
        type: 'file', id: makeId('file', KEEPALIVED_CONF), path: KEEPALIVED_CONF, content: renderKeepalived(p, host), sensitive: false,
        owner: 'root', group: 'root', mode: '0644', check: 'keepalived -t -f {}', notify: [unitId], origin,
      },
      { type: 'unit', id: unitId, name: UNIT, content: KEEPALIVED_UNIT, enabled: true, started: true, reload: true, sensitive: false, origin },
    ];
  },
};
