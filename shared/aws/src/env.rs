//! The process environment as the functions' configuration source.

use changegate::config::Source;

/// The process environment: what Lambda sets from template.yaml.
pub struct Env;

impl Source for Env {
    fn get(&self, var: &str) -> Option<String> {
        std::env::var(var).ok()
    }
}
