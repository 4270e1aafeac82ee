//! A host of its own on this machine: a network namespace joined to the test's by a veth pair
//! (`ip netns`, `ip link`, from iproute2), for processes that a test cuts off the network and
//! reconnects. Cutting drops every packet in and out of the namespace (`iptables` inside it),
//! as a network partition does: no refusal, no reset, just silence. Needs root, as the test
//! command runs; removed when dropped.

use std::process::Command;

/// A namespace `name`, with address `10.231.N.2` inside and `10.231.N.1` on the test's side.
pub struct NetNs {
    name: String,
    host_link: String,
    subnet: u8,
}

impl NetNs {
    /// Creates a namespace and its link, up and addressed.
    pub fn create() -> Self {
        let subnet: u8 = rand::random_range(1..=250);
        let id = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
        let netns = Self {
            name: format!("sp-{id}"),
            host_link: format!("sph{id}"),
            subnet,
        };
        let inner = format!("spn{id}");
        run("ip", &["netns", "add", &netns.name]);
        run(
            "ip",
            &[
                "link",
                "add",
                &netns.host_link,
                "type",
                "veth",
                "peer",
                "name",
                &inner,
            ],
        );
        run("ip", &["link", "set", &inner, "netns", &netns.name]);
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/30", netns.host_address()),
                "dev",
                &netns.host_link,
            ],
        );
        run("ip", &["link", "set", &netns.host_link, "up"]);
        let address = format!("10.231.{subnet}.2/30");
        netns.inside("ip", &["addr", "add", &address, "dev", &inner]);
        netns.inside("ip", &["link", "set", &inner, "up"]);
        netns.inside("ip", &["link", "set", "lo", "up"]);
        netns
    }

    /// The namespace's name, for `ip netns exec`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The test side's address: where a broker listens for clients inside the namespace.
    pub fn host_address(&self) -> String {
        format!("10.231.{}.1", self.subnet)
    }

    /// Drops every packet into and out of the namespace.
    pub fn cut(&self) {
        for chain in ["INPUT", "OUTPUT"] {
            self.inside("iptables", &["-A", chain, "-j", "DROP"]);
        }
    }

    /// Lets packets through again.
    pub fn heal(&self) {
        for chain in ["INPUT", "OUTPUT"] {
            self.inside("iptables", &["-D", chain, "-j", "DROP"]);
        }
    }

    fn inside(&self, program: &str, args: &[&str]) {
        let mut all = vec!["netns", "exec", self.name.as_str(), program];
        all.extend_from_slice(args);
        run("ip", &all);
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Removing the namespace removes its end of the link, and so the link.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_link])
            .output();
    }
}

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program} (iproute2, iptables: root only): {e}"));
    assert!(
        output.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}
