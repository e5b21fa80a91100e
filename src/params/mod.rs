//! Playbook parameters. A playbook declares them in a literal constant at
//! the top level, which `--help` and `check` read without running anything:
//!
//! ```rhai
//! const PARAMS = #{
//!     sha:  #{ type: "string", required: true, pattern: "[0-9a-f]{40}", help: "git SHA of the image" },
//!     dseq: #{ type: "int", env: "AKASH_DSEQ", help: "Akash deployment" },
//!     dry:  #{ type: "bool", default_value: false },
//! // (`default` is a reserved word in Rhai, hence `default_value`.)
//! };
//! ```
//!
//! Values reach the script as the constant map `args` (`args.sha`).
//!
//! Reading the declaration is `spec`, the command line `args`, the
//! `--help` text `help`, and the runner's own options, which a
//! playbook cannot declare, [`runner`].

mod args;
mod help;
pub mod runner;
mod spec;

pub use args::{parse_args_with_env, parse_bool};
pub use help::render_help;
pub use runner::{is_reserved, RunOptions};
pub use spec::fragment_errors;

use regex::Regex;
use rhai::{Dynamic, AST};

use crate::engine::Resolver;

/// The type of a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Text.
    String,
    /// A whole number.
    Int,
    /// true/false; `--flag` alone means true.
    Bool,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Int => "int",
            Kind::Bool => "bool",
        }
    }
}

/// One declared parameter.
#[derive(Clone, Debug)]
pub struct Param {
    /// Name as the script sees it (`args.name`); `--name` or `--na-me` on the command line.
    pub name: String,
    /// Its type.
    pub kind: Kind,
    /// Must be given (on the command line or through `env`).
    pub required: bool,
    /// Value when not given.
    pub default: Option<Dynamic>,
    /// Environment variable read when the flag is not given.
    pub env: Option<String>,
    /// A regular expression the whole value must match.
    pub pattern: Option<(String, Regex)>,
    /// Allowed values.
    pub choices: Vec<String>,
    /// One line of help.
    pub help: String,
}

/// What a playbook declares about itself.
#[derive(Clone, Debug, Default)]
pub struct Declaration {
    /// The `//!` lines at the top of the file.
    pub description: String,
    /// Declared parameters, in declaration order.
    pub params: Vec<Param>,
}

/// The `//!` description at the top of a playbook.
pub fn description(source: &str) -> String {
    source
        .lines()
        .skip_while(|l| l.starts_with("#!"))
        .take_while(|l| l.trim_start().starts_with("//!") || l.trim().is_empty())
        .filter_map(|l| l.trim_start().strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

/// Read the declaration from a compiled playbook. `resolver` finds the
/// modules its `PARAMS` takes shared fragments from (see `params_map`).
pub fn declaration(ast: &AST, source: &str, resolver: &Resolver) -> Result<Declaration, String> {
    let (decl, errors) = declaration_all(ast, source, resolver);
    if errors.is_empty() {
        Ok(decl)
    } else {
        Err(errors.join("\n"))
    }
}

/// Read the declaration and every mistake in it, in one pass. Parameters
/// with a mistake are still declared as far as they can be read, so later
/// checks (`args.x`) do not report false follow-ups.
pub fn declaration_all(ast: &AST, source: &str, resolver: &Resolver) -> (Declaration, Vec<String>) {
    let mut decl = Declaration {
        description: description(source),
        params: Vec::new(),
    };
    let mut errors = Vec::new();
    let Some(map) = spec::params_map(ast, source, resolver, &mut errors) else {
        return (decl, errors);
    };
    decl.params = map
        .into_iter()
        .filter_map(|(name, spec)| spec::read_spec(name.to_string(), spec, &mut errors))
        .collect();
    // Maps have no order of their own: required ones first, then by name.
    decl.params
        .sort_by(|a, b| b.required.cmp(&a.required).then(a.name.cmp(&b.name)));
    (decl, errors)
}

/// `--name` for a parameter named `name`.
pub(crate) fn flag(name: &str) -> String {
    format!("--{}", name.replace('_', "-"))
}

#[cfg(test)]
mod tests;
