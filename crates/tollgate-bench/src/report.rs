//! The benchmark's printed report.

use crate::Args;
use crate::cpu::{CpuUsage, ProcessCpu};
use crate::database::Database;
use crate::idp::IssuerFetches;
use crate::load::PhaseResult;
use crate::raw_crypto::{RawCrypto, RequestCrypto};
use crate::server::{ServeOptions, ServerProcess};
use std::time::Duration;

/// What is measured, where, and the raw crypto figures every phase is compared with.
pub fn header(
    args: &Args,
    server: &ServerProcess,
    options: &ServeOptions,
    database: &Database,
    cores: usize,
    raw: &RawCrypto,
) {
    let pid = server.pid().map_or_else(|| "?".to_owned(), |p| p.to_string());
    println!(
        "loadgen: tollgate server pid {pid} at {} ({}, {}); {} connections, {} s per phase after {} s warm-up",
        server.url(),
        options.backend(),
        raw.alg,
        args.connections,
        args.seconds,
        args.warm_up,
    );
    println!("database: {}", database.describe());
    println!("note: the server and this load generator run on the same machine and share its {cores} cores");
    if options.database_url.is_some() {
        println!("note: the database runs in processes of its own; their CPU time is not in the server's");
    }
    println!(
        "raw crypto, one thread of this process: {alg} sign {}, {alg} verify {}, HMAC-SHA256 check {}, \
         RS256 verify (upstream token) {}, {alg} sign (exchanged token) {}, HMAC-SHA256 (refresh token) {}",
        micros(raw.sign),
        micros(raw.verify),
        micros(raw.hmac),
        micros(raw.upstream_verify),
        micros(raw.exchange_sign),
        micros(raw.refresh_hmac),
        alg = raw.alg
    );
}

/// What the upstream issuers served: the server should fetch each one's keys at most once,
/// at its first exchange, and never again within a run.
pub fn upstream_fetches(issuers: &[IssuerFetches]) {
    println!();
    for f in issuers {
        let verdict = match (f.discovery, f.jwks) {
            (0, 0) => "never asked: no phase exchanged its tokens",
            (1, 1) => "once, at the first exchange: none on the request path after that",
            _ => "more than once: fetches reached the request path",
        };
        println!(
            "upstream issuer {} served {} discovery and {} JWKS requests ({verdict})",
            f.name, f.discovery, f.jwks
        );
    }
}

/// One phase: throughput, latency, errors, CPU, and the share of the raw crypto rate.
pub fn phase(name: &str, result: &PhaseResult, cpu: &CpuUsage, raw: &RequestCrypto, cores: usize) {
    let rate = result.successes_per_second();
    println!(
        "\n{name}: {} requests, {} errors in {:.2} s -> {rate:.0} req/s; latency p50 {}, p90 {}, p99 {}",
        result.requests(),
        result.errors,
        result.elapsed.as_secs_f64(),
        millis(result.percentile(0.50)),
        millis(result.percentile(0.90)),
        millis(result.percentile(0.99)),
    );
    if let Some(first) = &result.first_error {
        println!("  first error: {first}");
    }
    if result.stopped_workers > 0 {
        println!(
            "  {} workers stopped early: their refresh-token chains broke",
            result.stopped_workers
        );
    }
    let elapsed = result.elapsed.as_secs_f64();
    println!(
        "  CPU time: server {}, loadgen {}",
        cpu_time(cpu.server, elapsed),
        cpu_time(cpu.loadgen, elapsed)
    );
    let raw_rate = raw.per_core_rate();
    let per_server_cpu = cpu.server.map_or_else(String::new, |server| {
        let per_cpu_second = result.successes() as f64 / server.total().as_secs_f64();
        format!(
            " (per server CPU-second: {per_cpu_second:.0} req -> {} of raw)",
            percent(per_cpu_second / raw_rate)
        )
    });
    println!(
        "{name}: {rate:.0} req/s over {cores} cores; raw crypto ({}) {raw_rate:.0} ops/s per core -> {} of raw{per_server_cpu}",
        raw.label,
        percent(rate / (raw_rate * cores as f64))
    );
}

fn cpu_time(used: Option<ProcessCpu>, elapsed_secs: f64) -> String {
    let Some(used) = used else {
        return "n/a".to_owned();
    };
    let total = used.total().as_secs_f64();
    let kernel = if total > 0.0 {
        used.system.as_secs_f64() / total
    } else {
        0.0
    };
    format!(
        "{total:.2} s ({:.2} cores, {} in the kernel)",
        total / elapsed_secs,
        percent(kernel)
    )
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}
