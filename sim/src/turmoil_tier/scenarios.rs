//! The scenarios beyond offload, each a scripted run on the turmoil LAN returning what its test
//! asserts. Each needs at least ten machines.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, ensure};
use passim_core::Sha256;

use super::{Answer, Ask, BASENAME, Run, get, host_name, lock, now};
use crate::model::{self, Params, Report, Source};

/// A request a probe machine (a LAN machine that runs no passimd) sends.
#[derive(Clone, Debug)]
pub struct Probe {
    /// When.
    pub at: Duration,
    /// To which machine.
    pub to: usize,
    /// The path and query, e.g. `/?` or `/name?sha256=…`.
    pub path: String,
}

/// What a probe got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probed {
    /// When it was sent.
    pub at: Duration,
    /// When the answer arrived.
    pub answered: Duration,
    /// The status, or 0 when the exchange failed.
    pub status: u16,
}

impl Run<'_> {
    /// Adds a machine named `name` that sends `probes` and records the answers. Call before the
    /// first step.
    pub fn probe(&mut self, name: &str, probes: Vec<Probe>) -> Arc<Mutex<Vec<Probed>>> {
        let results = Arc::new(Mutex::new(Vec::new()));
        let out = results.clone();
        let targets: Vec<SocketAddr> = (0..self.params.hosts)
            .map(|h| SocketAddr::new(self.sim.lookup(host_name(h)), model::PORT))
            .collect();
        self.sim.client(name, async move {
            for probe in probes {
                if probe.at > now() {
                    tokio::time::sleep(probe.at - now()).await;
                }
                let at = now();
                let addr = targets[probe.to];
                let url = format!("https://{addr}{}", probe.path);
                let status = match get(addr, &url, Duration::from_secs(10)).await {
                    Ok(Answer::Body(_)) => 200,
                    Ok(Answer::Redirect(_)) => 302,
                    Ok(Answer::Status(s)) => s,
                    Err(_) => 0,
                };
                lock(&out).push(Probed {
                    at,
                    answered: now(),
                    status,
                });
            }
            // Stay up: a finished client would end turmoil's run, and ours ends on its own terms.
            std::future::pending::<()>().await;
            Ok(())
        });
        results
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn fetch_path(hash: &Sha256) -> String {
    format!("/{BASENAME}?sha256={hash}")
}

/// What the churn scenario saw.
#[derive(Debug)]
pub struct ChurnReport {
    /// The run's figures.
    pub report: Report,
    /// Clients a peer refused after their daemon sent them there: the copy hit its share-limit
    /// between the redirect and the request.
    pub refused_after_redirect: u32,
    /// The machine that crashed while serving, and whether it held its item again after coming
    /// back.
    pub crashed_server: usize,
    /// Whether the crashed server held its item after its restart.
    pub server_kept_item: bool,
    /// How often the machine that crashed mid-fetch started.
    pub crashed_client_starts: u32,
    /// Where the partitioned machine got the file from.
    pub partitioned_source: Option<Source>,
}

/// Churn, on at least ten machines with share-limit 2, in four acts:
///
/// 1. machine 0 fetches from the CDN, then machines 1–4 ask in the same instant and are all sent
///    to machine 0, whose copy is gone after its second share: the others are refused by it;
/// 2. machine 5's client is sent to a peer that crashes while serving it and comes back 3 s
///    later from its store;
/// 3. machine 6 crashes in the middle of its own fetch and comes back 2 s later;
/// 4. machine 7 is cut off from the LAN (not from the CDN) while it fetches;
///
/// and the remaining machines then refresh while LAN links fail and repair at random.
pub fn churn(params: &Params) -> Result<ChurnReport> {
    ensure!(params.hosts >= 10, "churn needs at least ten machines");
    let mut params = params.clone();
    params.share_limit = 2;
    let mut asks = vec![Ask {
        host: 0,
        at: secs(1.0),
        version: 0,
    }];
    asks.extend((1..=4).map(|host| Ask {
        host,
        at: secs(3.0),
        version: 0,
    }));
    asks.push(Ask {
        host: 5,
        at: secs(6.0),
        version: 0,
    });
    asks.push(Ask {
        host: 6,
        at: secs(12.0),
        version: 0,
    });
    asks.push(Ask {
        host: 7,
        at: secs(19.0),
        version: 0,
    });
    asks.extend((8..params.hosts).map(|host| Ask {
        host,
        at: secs(30.0 + 0.5 * (host - 8) as f64),
        version: 0,
    }));
    let hash = model::sha256(&model::content(params.seed, params.item_size, 0));
    let mut run = Run::new(&params, asks)?;
    let limit = secs(600.0);

    // Act 2: crash the server mid-exchange. The redirect is recorded as the client starts to
    // connect, and the whole exchange takes about 50 ms: two ticks later the peer is in the
    // middle of it.
    run.run_to(secs(6.0))?;
    let server = run.step_until(limit, |s| s.redirected.get(&5).copied())?;
    run.run_for(Duration::from_millis(20))?;
    run.sim.crash(host_name(server));
    run.run_for(secs(3.0))?;
    run.sim.bounce(host_name(server));
    run.step_until(limit, |s| {
        (s.starts.get(&server) == Some(&2) && s.daemons.contains_key(&server)).then_some(())
    })?;
    // Give it a moment to load its store.
    run.run_for(secs(1.0))?;
    let server_kept_item = lock(&run.state).daemons[&server]
        .items()
        .iter()
        .any(|i| i.hash == hash);

    // Act 3: crash a client mid-fetch.
    run.run_to(secs(12.0))?;
    run.step_until(limit, |s| s.redirected.get(&6).map(|_| ()))?;
    run.run_for(Duration::from_millis(20))?;
    run.sim.crash(host_name(6));
    run.run_for(secs(2.0))?;
    run.sim.bounce(host_name(6));

    // Act 4: cut machine 7 off from every other machine of the LAN.
    run.run_to(secs(18.0))?;
    for h in (0..params.hosts).filter(|&h| h != 7) {
        run.sim.partition(host_name(7), host_name(h));
    }
    run.run_to(secs(25.0))?;
    for h in (0..params.hosts).filter(|&h| h != 7) {
        run.sim.repair(host_name(7), host_name(h));
    }

    // The rest, on flaky links.
    run.run_to(secs(29.0))?;
    run.sim.set_fail_rate(0.05);
    run.until_done(limit)?;

    let state = lock(&run.state);
    let refused_after_redirect = state.peer_refusals;
    let crashed_client_starts = state.starts.get(&6).copied().unwrap_or(0);
    let partitioned_source = state
        .fetches
        .iter()
        .find(|f| f.host == 7)
        .and_then(|f| f.source);
    drop(state);
    Ok(ChurnReport {
        report: run.finish(),
        refused_after_redirect,
        crashed_server: server,
        server_kept_item,
        crashed_client_starts,
        partitioned_source,
    })
}

/// What the abuse scenario saw.
#[derive(Debug)]
pub struct AbuseReport {
    /// The run's figures.
    pub report: Report,
    /// The hammering requests' answers.
    pub hammer: Vec<Probed>,
    /// The answer to a remote request for the index page.
    pub index: Probed,
    /// The answer to a remote request for a hash the victim does not hold.
    pub unknown: Probed,
    /// Discovery queries the victim sent because of the abuser.
    pub victim_queries: u64,
    /// Whether the victim still shared its item after the hammering.
    pub victim_kept_item: bool,
    /// Where machine 1, asking after the hammering, got the file.
    pub later_source: Option<Source>,
}

/// A LAN machine (`abuser`, no passimd) hammers machine 0's item four times a second for 30 s,
/// and asks it for its index page and for a hash it does not hold. Afterwards machine 1
/// refreshes.
pub fn abuse(params: &Params) -> Result<AbuseReport> {
    ensure!(params.hosts >= 2, "abuse needs two machines");
    let hash = model::sha256(&model::content(params.seed, params.item_size, 0));
    let asks = vec![
        Ask {
            host: 0,
            at: secs(1.0),
            version: 0,
        },
        Ask {
            host: 1,
            at: secs(40.0),
            version: 0,
        },
    ];
    let mut run = Run::new(params, asks)?;
    let mut probes: Vec<Probe> = (0..120)
        .map(|i| Probe {
            at: secs(3.0 + 0.25 * f64::from(i)),
            to: 0,
            path: fetch_path(&hash),
        })
        .collect();
    probes.push(Probe {
        at: secs(34.0),
        to: 0,
        path: "/".into(),
    });
    let unknown = model::sha256(b"nobody has this");
    probes.push(Probe {
        at: secs(35.0),
        to: 0,
        path: fetch_path(&unknown),
    });
    let results = run.probe("abuser", probes);

    run.run_to(secs(33.0))?;
    let queries_before = lock(&run.state).queries.get(&0).copied().unwrap_or(0);
    run.run_to(secs(36.0))?;
    let victim_kept_item = lock(&run.state).daemons[&0]
        .items()
        .iter()
        .any(|i| i.hash == hash);
    run.until_done(secs(120.0))?;
    let state = lock(&run.state);
    let victim_queries = state.queries.get(&0).copied().unwrap_or(0) - queries_before;
    let later_source = state
        .fetches
        .iter()
        .find(|f| f.host == 1)
        .and_then(|f| f.source);
    drop(state);
    let probed = lock(&results).clone();
    ensure!(
        probed.len() == 122,
        "the abuser sent {} of 122 requests",
        probed.len()
    );
    Ok(AbuseReport {
        report: run.finish(),
        hammer: probed[..120].to_vec(),
        index: probed[120].clone(),
        unknown: probed[121].clone(),
        victim_queries,
        victim_kept_item,
        later_source,
    })
}

/// What the expiry scenario saw.
#[derive(Debug)]
pub struct ExpiryReport {
    /// The run's figures.
    pub report: Report,
    /// The first version's hash.
    pub old: Sha256,
    /// Machines that still held the first version after its max-age.
    pub still_holding: Vec<usize>,
    /// Remote requests for the first version after its max-age, one per machine.
    pub old_probes: Vec<Probed>,
    /// Where the machine that first asked for the old version after its max-age got it.
    pub late_source: Option<Source>,
    /// CDN downloads of the second version.
    pub new_cdn: usize,
}

/// Half the machines fetch version 0 (max-age 10 s); after it expires a probe asks every machine
/// for it and one machine that never had it refreshes it; then every machine refreshes version 1.
pub fn expiry(params: &Params) -> Result<ExpiryReport> {
    ensure!(params.hosts >= 4, "expiry needs four machines");
    let mut params = params.clone();
    params.max_age = 10;
    let n = params.hosts;
    let first: Vec<usize> = (0..n / 2).collect();
    let late = n - 1;
    let mut asks: Vec<Ask> = first
        .iter()
        .map(|&host| Ask {
            host,
            at: secs(1.0 + 0.2 * host as f64),
            version: 0,
        })
        .collect();
    asks.push(Ask {
        host: late,
        at: secs(22.0),
        version: 0,
    });
    asks.extend((0..n).map(|host| Ask {
        host,
        at: secs(25.0 + 0.3 * host as f64),
        version: 1,
    }));
    let old = model::sha256(&model::content(params.seed, params.item_size, 0));
    let new = model::sha256(&model::content(params.seed, params.item_size, 1));
    let mut run = Run::new(&params, asks)?;
    let results = run.probe(
        "probe",
        (0..n)
            .map(|to| Probe {
                at: secs(21.0),
                to,
                path: fetch_path(&old),
            })
            .collect(),
    );

    // Everything of version 0 was published by 1 + 0.2 × n/2 s plus a fetch; 10 s later it is
    // past its max-age.
    run.run_to(secs(20.5))?;
    let still_holding: Vec<usize> = lock(&run.state)
        .daemons
        .iter()
        .filter(|(_, d)| d.items().iter().any(|i| i.hash == old))
        .map(|(&h, _)| h)
        .collect();
    run.until_done(secs(300.0))?;
    let state = lock(&run.state);
    let late_source = state
        .fetches
        .iter()
        .find(|f| f.host == late && f.start >= secs(22.0) && f.start < secs(25.0))
        .and_then(|f| f.source);
    let new_cdn = state
        .fetches
        .iter()
        .filter(|f| f.start >= secs(25.0) && f.source == Some(Source::Cdn))
        .count();
    let holders_of_new = state
        .daemons
        .values()
        .filter(|d| d.items().iter().any(|i| i.hash == new))
        .count();
    drop(state);
    ensure!(holders_of_new > 0, "nobody holds the new version");
    let old_probes = lock(&results).clone();
    Ok(ExpiryReport {
        report: run.finish(),
        old,
        still_holding,
        old_probes,
        late_source,
        new_cdn,
    })
}
