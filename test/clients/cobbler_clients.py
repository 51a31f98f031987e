#!/usr/bin/env python3
"""What Cobbler's clients do over XML-RPC, with Python's own xmlrpc.client.

usage: cobbler_clients.py koan HOST PORT SYSTEM PROFILE
       cobbler_clients.py ansible HOST PORT PASSWORD PROFILE NAME

koan: the calls koan 3.3 makes (koan/app.py, koan/utils.py connect_to_server):
ping, get_systems/get_profiles/get_images/get_distros/get_repos, then
get_system_as_rendered and the downloads it names (kernel and initrd,
rewritten to /cobbler/images/... as koan does when they are paths; the
autoinstall URL from "autoinst", else the older "kickstart" key), then the
older get_system_for_koan and an unknown name.

ansible: what community.general.cobbler_system does for state=present then
absent: login, version, find_system(criteria, token), new_system,
modify_system (fields and modify_interface), save_system, get_system_handle,
modify again, sync, remove_system; plus a write without a token.

Prints one JSON document with what it saw; the calling test asserts on it.
"""
import json
import os
import sys
import urllib.request
import urllib.error
import xmlrpc.client


def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def koan(host, port, system, profile):
    # koan tries https first, then http; forge serves http here.
    s = xmlrpc.client.ServerProxy("http://%s:%s/cobbler_api" % (host, port))
    out = {"ping": s.ping()}
    for what in ("systems", "profiles", "images", "distros", "repos"):
        out[what] = [x["name"] for x in getattr(s, "get_%s" % what)()]
    pd = s.get_system_as_rendered(system)
    out["rendered"] = pd
    # koan app.py net_install: autoinst, else kickstart (cobbler < 3)
    autoinst = pd.get("autoinst", "") or pd.get("kickstart", "")
    if autoinst[0] == "/" or os.path.dirname(autoinst) == "":
        autoinst = "http://%s/cblr/svc/op/ks/system/%s" % (pd["http_server"], pd["name"])
    out["autoinst_url"] = autoinst
    # koan get_distro_files
    files = {}
    for key in ("kernel", "initrd"):
        url = pd[key]
        if url[0] == "/":
            url = "http://%s/cobbler/images/%s/%s" % (pd["http_server"], pd["distro"], os.path.basename(url))
        status, body = fetch(url)
        files[key] = {"url": url, "status": status, "bytes": body.decode("latin-1")}
    status, body = fetch(autoinst)
    files["autoinst"] = {"url": autoinst, "status": status, "text": body.decode()}
    out["files"] = files
    out["profile_rendered"] = s.get_profile_as_rendered(profile)
    out["for_koan"] = s.get_system_for_koan(system)["name"]
    out["profile_for_koan"] = s.get_profile_for_koan(profile)["name"]
    out["unknown"] = s.get_system_as_rendered("no-such-system")
    out["unknown_profile"] = s.get_profile_as_rendered("no-such-profile")
    return out


def ansible(host, port, password, profile, name):
    s = xmlrpc.client.ServerProxy("http://%s:%s/cobbler_api" % (host, port))
    out = {}
    try:
        s.login("cobbler", "wrong-password")
        out["bad_login"] = "accepted"
    except xmlrpc.client.Fault as e:
        out["bad_login"] = e.faultString
    token = s.login("cobbler", password)
    out["token_check"] = s.token_check(token)
    out["token_check_bad"] = s.token_check("nope")
    out["version"] = s.version()
    out["before"] = s.find_system(dict(name=name), token)
    # state=present, new entry
    sid = s.new_system(token)
    s.modify_system(sid, "name", name, token)
    for key, value in (("profile", profile), ("hostname", name + ".lab.example"), ("netboot_enabled", True),
                       ("kernel_options", "console=ttyS0,115200 quiet"), ("name_servers", ["192.0.2.53"])):
        s.modify_system(sid, key, value, token)
    s.modify_system(sid, "modify_interface", {
        "macaddress-eth0": "52:54:00:12:34:56",
        "ipaddress-eth0": "192.0.2.77",
        "netmask-eth0": "255.255.255.0",
        "static-eth0": True,
        "dnsname-eth0": name + ".lab.example",
        "macaddress-eth1": "52:54:00:12:34:57",
        "interfacetype-eth1": "bond_slave",
        "interfacemaster-eth1": "bond0",
        "interfacetype-bond0": "bond",
        "bondingopts-bond0": "mode=active-backup",
    }, token)
    out["unsaved"] = s.find_system(dict(name=name), token)
    out["saved"] = s.save_system(sid, token)
    found = s.find_system(dict(name=name), token)
    out["after_create"] = found
    # the module compares system[key] and system['interfaces'][dev][field]
    sysrec = found[0]
    out["compare"] = {
        "hostname": sysrec["hostname"],
        "eth0_ip": sysrec["interfaces"]["eth0"]["ip_address"],
        "eth0_mac": sysrec["interfaces"]["eth0"]["mac_address"],
        "eth0_cnames": sysrec["interfaces"]["eth0"]["cnames"],
        "bond0_type": sysrec["interfaces"]["bond0"]["interface_type"],
    }
    # power fields as Ansible sets them (Cobbler names), then the anonymous and the token view
    pid = s.get_system_handle(name, token)
    for key, value in (("power_type", "ipmilanplus"), ("power_address", "192.0.2.250"), ("power_user", "admin"), ("power_pass", "bmc-secret")):
        s.modify_system(pid, key, value, token)
    s.save_system(pid, token)
    anon = s.get_system(name)
    authed = s.find_system(dict(name=name), token)[0]
    out["power"] = {"anon_pass": anon["power_pass"], "anon_type": anon["power_type"], "pass": authed["power_pass"], "type": authed["power_type"],
                    "rendered_anon_pass": s.get_system_as_rendered(name)["power_pass"], "rendered_pass": s.get_system_as_rendered(name, token)["power_pass"]}
    # state=present, existing entry (Cobbler < 3.4: handle with token)
    if float(out["version"]) >= 3.4:
        hid = s.get_system_handle(name)
    else:
        hid = s.get_system_handle(name, token)
    s.modify_system(hid, "comment", "changed by ansible", token)
    s.modify_system(hid, "modify_interface", {"ipaddress-eth0": "192.0.2.78"}, token)
    s.save_system(hid, token)
    again = s.find_system(dict(name=name), token)[0]
    out["after_modify"] = {"comment": again["comment"], "eth0_ip": again["interfaces"]["eth0"]["ip_address"]}
    # errors are faults that name the problem, and change nothing
    faults = {}
    for label, call in (
        ("no_token_new", lambda: s.new_system("")),
        ("no_token_modify", lambda: s.modify_system(hid, "comment", "x", "")),
        ("no_token_remove", lambda: s.remove_system(name, "bad-token")),
        ("power_field", lambda: s.modify_system(s.get_system_handle(name, token), "power_options", "lanplus", token)),
        ("bad_ip", lambda: (s.modify_system(hid2, "modify_interface", {"ipaddress-eth0": "999.1.1.1"}, token), s.save_system(hid2, token))),
        ("unknown_method", lambda: s.frobnicate()),
    ):
        if label == "bad_ip":
            hid2 = s.get_system_handle(name, token)
        try:
            call()
            faults[label] = "no fault"
        except xmlrpc.client.Fault as e:
            faults[label] = e.faultString
    out["faults"] = faults
    out["after_faults"] = s.find_system(dict(name=name), token)[0]["interfaces"]["eth0"]["ip_address"]
    out["sync"] = s.sync(token)
    # state=absent
    out["removed"] = s.remove_system(name, token)
    out["after_remove"] = s.find_system(dict(name=name), token)
    return out


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "koan":
        result = koan(*sys.argv[2:6])
    elif mode == "ansible":
        result = ansible(*sys.argv[2:7])
    else:
        raise SystemExit("usage: cobbler_clients.py koan|ansible ...")
    json.dump(result, sys.stdout)
