//! The command line (SPEC §11): `--help`, `--help-all` and `--version`, read before any
//! variable. A run itself is configured by `JOBHERD_*` variables alone.

use std::ffi::OsString;

use crate::config::{VARIABLES, Variable};
use crate::exit::Exit;

/// What jobherd was asked on its command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// No arguments: run, as the variables say.
    Run,
    /// A short usage.
    Help,
    /// The whole reference (`docs/reference.md`).
    Reference,
    Version,
    /// Inside a packed child: jobherd's entrypoint (`entrypoint install DEST`, `entrypoint --
    /// COMMAND...`), which sets the child's own variables and runs its command.
    Entrypoint,
}

/// One way of calling jobherd with arguments, as the reference lists it.
#[derive(Debug)]
pub struct Argument {
    /// The spellings, the first being the one to show; a form of two words is two arguments.
    pub forms: &'static [&'static str],
    pub command: Command,
    /// What it prints (Markdown).
    pub prints: &'static str,
}

/// Every argument jobherd takes; anything else exits 2.
pub const ARGUMENTS: &[Argument] = &[
    Argument {
        forms: &["--help", "-h", "help"],
        command: Command::Help,
        prints: "A short usage: what jobherd does, the variables most runs set, where this reference is.",
    },
    Argument {
        forms: &["--help-all", "help variables"],
        command: Command::Reference,
        prints: "This reference: every variable, plan field, exit code, label and annotation.",
    },
    Argument {
        forms: &["--version", "-V"],
        command: Command::Version,
        prints: "The version, the git commit it was built from, and the Kubernetes API version it was built for.",
    },
    Argument {
        forms: &["entrypoint"],
        command: Command::Entrypoint,
        prints: "Nothing: inside a packed child (`JOBHERD_PACK=indexed`), `entrypoint install DEST` copies jobherd where the child's container finds it, and `entrypoint -- COMMAND ARGS...` sets the child's own variables from its pack and runs its command. Not for people.",
    },
];

/// The variables `--help` shows: what most runs set.
const MOST_SET: &[&str] = &["image", "shell", "params", "parallelism", "timeout"];

/// Reads the arguments (without the program's name); an unknown one is named in the error.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if args.is_empty() {
        return Ok(Command::Run);
    }
    if args[0] == "entrypoint" {
        return Ok(Command::Entrypoint);
    }
    let form = |n: usize| {
        let words = args[..n].join(" ");
        ARGUMENTS
            .iter()
            .find(|a| a.forms.contains(&words.as_str()))
            .map(|a| a.command)
    };
    if let Some(command) = form(args.len()) {
        return Ok(command);
    }
    // The first argument that does not belong: after a form that is whole, or the first one.
    let known = (1..args.len())
        .rev()
        .find(|n| form(*n).is_some())
        .unwrap_or(0);
    Err(format!(
        "unknown argument {:?}: jobherd takes no arguments but --help, --help-all and --version; a run is configured by JOBHERD_* variables (jobherd --help)",
        args[known]
    ))
}

/// `jobherd --help`: what it does, the variables most runs set, where the rest is.
pub fn usage() -> String {
    let mut out = format!(
        "jobherd {}: the parent Job of a Kubernetes CronJob (or a one-off Job, or a CI
step) that creates child Jobs, fanned out over parameters or ordered by a plan,
follows them to the end, and exits with the aggregate result. It is configured
by JOBHERD_* environment variables.

Usage:
  jobherd                 run, as the JOBHERD_* variables say
  jobherd --help-all      the reference: every variable, field, code and label
  jobherd --version       version, git commit, Kubernetes API version

The variables most runs set:
",
        env!("CARGO_PKG_VERSION")
    );
    for v in MOST_SET
        .iter()
        .filter_map(|f| VARIABLES.iter().find(|v| v.field == *f))
    {
        let text = format!(
            "{}. Type: {}. Default: {}.",
            first_sentence(v),
            v.kind,
            v.default_text()
        );
        out.push_str(&wrap(&v.name(), &text.replace('`', "")));
    }
    out.push_str(
        "
Try it without a cluster (prints the Jobs it would create):
  JOBHERD_DRY_RUN=client JOBHERD_IMAGE=busybox JOBHERD_COUNT=3 \\
  JOBHERD_SHELL='echo $JOBHERD_CHILD_INDEX' jobherd

Exit codes:
",
    );
    for e in Exit::ALL {
        out.push_str(&format!("  {:<4} {}\n", e.code(), e.brief()));
    }
    out.push_str(
        "\nThe reference: jobherd --help-all, or docs/reference.md in jobherd's source.\n",
    );
    out
}

/// `jobherd --version`: one line, for bug reports and scripts.
pub fn version() -> String {
    format!(
        "jobherd {} (commit {}, built for the Kubernetes {} API)\n",
        env!("CARGO_PKG_VERSION"),
        env!("BUILD_GIT_COMMIT"),
        env!("BUILD_K8S_API"),
    )
}

/// `name` and `text` in two columns, the text wrapped to fit 80 columns.
fn wrap(name: &str, text: &str) -> String {
    const INDENT: usize = 24;
    let mut out = format!("  {name:<width$}", width = INDENT - 2);
    let mut column = INDENT;
    for word in text.split(' ') {
        if column > INDENT && column + 1 + word.len() > 80 {
            out.push_str(&format!("\n{:INDENT$}", ""));
            column = INDENT;
        } else if column > INDENT {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += word.len();
    }
    out.push('\n');
    out
}

fn first_sentence(v: &Variable) -> &str {
    v.meaning
        .split_once(". ")
        .map_or(v.meaning, |(first, _)| first)
        .trim_end_matches('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &[&str]) -> Result<Command, String> {
        parse(words.iter().map(OsString::from))
    }

    #[test]
    fn every_form_is_read_and_anything_else_is_named() {
        assert_eq!(parse_words(&[]), Ok(Command::Run));
        for a in ARGUMENTS {
            for form in a.forms {
                assert_eq!(
                    parse_words(&form.split(' ').collect::<Vec<_>>()),
                    Ok(a.command)
                );
            }
        }
        for (words, named) in [
            (&["--frobnicate"][..], "\"--frobnicate\""),
            (&["help", "plans"][..], "\"plans\""),
            (&["--help", "--version"][..], "\"--version\""),
            (&["run"][..], "\"run\""),
        ] {
            let msg = parse_words(words).unwrap_err();
            assert!(
                msg.starts_with(&format!("unknown argument {named}")),
                "{msg}"
            );
        }
    }

    #[test]
    fn the_usage_shows_variables_of_the_table() {
        assert_eq!(
            MOST_SET
                .iter()
                .filter(|f| VARIABLES.iter().any(|v| v.field == **f))
                .count(),
            MOST_SET.len()
        );
        assert!(usage().contains("JOBHERD_PARALLELISM"));
        assert!(
            usage().lines().all(|l| l.chars().count() <= 80),
            "{}",
            usage()
        );
    }
}
