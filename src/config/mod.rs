//! Configuration: the YAML file read into validated [`Settings`].
//!
//! Reading walks the YAML tree once, collecting every problem with its path
//! (`routes[2].methods`), so an operator sees the whole list at once. One
//! file per section of the file: [`listeners`] (`listen`, `upstream`,
//! `tls`, `timeouts`, `admin`, `log`), [`jwt`], [`revocation`], [`routes`],
//! [`forward`]; [`secret`] masks what is printed. Nothing here binds a port
//! or imports another module of this crate: everyone imports config.

mod forward;
mod intake;
mod jwt;
mod listeners;
mod reader;
mod revocation;
mod routes;
mod secret;

pub use forward::*;
pub use intake::*;
pub use jwt::*;
pub use listeners::*;
pub use reader::{parse_duration, Problem};
pub use revocation::*;
pub use routes::*;
pub use secret::*;

use forward::read_forward;
use intake::read_intake;
use jwt::read_jwt;
use listeners::{read_admin, read_log, read_server_tls, read_timeouts, read_upstream};
use reader::{expand_env, Problems, Section};
use revocation::read_revocation;
use routes::read_routes;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub listen: SocketAddr,
    pub upstream: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_tls: Option<UpstreamTls>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTls>,
    pub timeouts: Timeouts,
    pub jwt: JwtSettings,
    pub revocation: RevocationSettings,
    pub routes: Vec<RouteSettings>,
    pub forward: ForwardSettings,
    #[serde(skip_serializing_if = "IntakeSettings::is_empty")]
    pub intake: IntakeSettings,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminSettings>,
    pub log: LogSettings,
}

/// Checks the modules that use the settings make of them (settings in,
/// problems out), run after the file's own.
pub type Checks<'a> = dyn Fn(&Settings) -> Vec<Problem> + 'a;

/// Every problem found in a configuration.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid configuration ({} problem(s))", .0.len())]
pub struct ConfigError(pub Vec<Problem>);

impl ConfigError {
    fn single(path: &str, message: impl Into<String>) -> Self {
        ConfigError(vec![Problem {
            path: path.to_string(),
            message: message.into(),
        }])
    }
}

impl Settings {
    /// Key files the configuration reads (`secret_file`, `public_key_file`
    /// of `jwt` and of each intake issuer): the reloader watches them as it
    /// watches the file itself, so a rotated secret needs no restart.
    pub fn key_files(&self) -> Vec<PathBuf> {
        let issuers = self.intake.issuers.iter().map(|i| &i.keys);
        std::iter::once(&self.jwt)
            .chain(issuers)
            .flat_map(JwtSettings::key_files)
            .cloned()
            .collect()
    }

    /// Reads and validates the file at `path`, expanding `${VAR}` from the
    /// process environment.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        Settings::load_checked(path, &|_| Vec::new())
    }

    /// [`Settings::load`] with `more` checks by the modules that use the
    /// settings (the header policy's reserved names): their problems are
    /// listed with the file's own, all at once.
    pub fn load_checked(path: &Path, more: &Checks<'_>) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::single("", format!("cannot read {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Settings::parse_checked(&text, base, &|name| std::env::var(name).ok(), more)
    }

    /// Parses YAML text; relative file paths resolve against `base`.
    pub fn parse(
        text: &str,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        Settings::parse_checked(text, base, env, &|_| Vec::new())
    }

    /// [`Settings::parse`] with `more` checks (see [`Settings::load_checked`]).
    pub fn parse_checked(
        text: &str,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        more: &Checks<'_>,
    ) -> Result<Settings, ConfigError> {
        let mut doc: serde_yaml::Value = serde_yaml::from_str(text)
            .map_err(|e| ConfigError::single("", format!("not valid YAML: {e}")))?;
        let mut problems = Problems::default();
        expand_env(&mut doc, "", env, &mut problems);
        let settings = read_settings(&doc, base, &mut problems);
        for extra in more(&settings) {
            problems.add(&extra.path, extra.message);
        }
        if problems.0.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigError(problems.0))
        }
    }

    /// The effective settings as YAML, secrets masked.
    pub fn describe(&self) -> String {
        serde_yaml::to_string(self).unwrap_or_else(|e| format!("(cannot render settings: {e})"))
    }
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let path = PathBuf::from(p);
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}

fn socket_addr(text: Option<String>, default: &str, path: &str, p: &mut Problems) -> SocketAddr {
    let text = text.unwrap_or_else(|| default.to_string());
    match text.parse() {
        Ok(a) => a,
        Err(_) => {
            p.add(
                path,
                format!("invalid address {text:?} (write host:port, e.g. 127.0.0.1:8080)"),
            );
            SocketAddr::from(([0, 0, 0, 0], 0))
        }
    }
}

fn one_of<T: Copy>(
    text: Option<String>,
    choices: &[(&str, T)],
    default: T,
    path: &str,
    p: &mut Problems,
) -> T {
    let Some(text) = text else { return default };
    match choices.iter().find(|(name, _)| *name == text) {
        Some((_, v)) => *v,
        None => {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            p.add(path, format!("{text:?} is not one of {}", names.join(", ")));
            default
        }
    }
}

fn read_settings(doc: &serde_yaml::Value, base: &Path, p: &mut Problems) -> Settings {
    let mut top = Section::open(Some(doc), "", p);
    if !top.is_present() {
        p.add("", "the configuration is empty");
    }
    let listen = socket_addr(top.string("listen", p), DEFAULT_LISTEN, "listen", p);
    let upstream = read_upstream(top.string("upstream", p), p);
    let upstream_tls = {
        let mut s = top.section("upstream_tls", p);
        let present = s.is_present();
        let ca = s.string("ca_file", p).map(|f| resolve(base, &f));
        s.finish(p);
        present.then_some(UpstreamTls { ca_file: ca })
    };
    let tls = read_server_tls(top.section("tls", p), base, p);
    let timeouts = read_timeouts(top.section("timeouts", p), p);
    let jwt = read_jwt(top.section("jwt", p), base, p);
    let revocation = read_revocation(top.section("revocation", p), base, p);
    let mut routes = read_routes(top.get("routes"), p);
    let cookie = jwt.token_from.iter().find_map(|t| match t {
        TokenSource::Cookie(name) => Some(name.as_str()),
        _ => None,
    });
    routes::name_cleared_cookies(&mut routes, cookie, p);
    let forward = read_forward(top.section("forward", p), p);
    let intake = read_intake(top.section("intake", p), base, p);
    let admin = read_admin(top.section("admin", p), listen, p);
    let log = read_log(top.section("log", p), p);
    top.finish(p);

    if upstream_tls.is_some() && !upstream.starts_with("https://") {
        p.add("upstream_tls", "only used with an https:// upstream");
    }
    Settings {
        listen,
        upstream,
        upstream_tls,
        tls,
        timeouts,
        jwt,
        revocation,
        routes,
        forward,
        intake,
        admin,
        log,
    }
}

#[cfg(test)]
mod tests;
