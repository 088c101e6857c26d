//! The loaded rules with their exceptions: what the sensor evaluates each event against.

use crate::document::Document;
use crate::exceptions::{CompiledItem, ExceptionError, Exceptions, compile_items};
use crate::index::RuleIndex;
use crate::prefilter::{AnalysisGate, Prefilter};
use crate::rulefile::Rule;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// Rules and their compiled exception items, with an index on the rules' constant
/// preconditions (built when the set is made) so that an event is evaluated only against the
/// rules it can match: a key per rule, one top-level conjunct testing a field such as
/// `process.name` or `process.parent.name` against constant strings (equality, `in`, `in~`, a
/// `like`/`:` prefix, `startsWith`). Looking up an event's candidates allocates nothing for sets
/// of up to 512 rules; the verdicts are exactly those of evaluating every rule.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// `exceptions[i]` belongs to `rules[i]`.
    exceptions: Vec<Vec<CompiledItem>>,
    index: RuleIndex,
}

impl RuleSet {
    /// Pairs rules with their exceptions. Exceptions for a rule id that is not loaded, and
    /// malformed items, are errors (every one is reported).
    pub fn new(rules: Vec<Rule>, exceptions: &Exceptions) -> Result<RuleSet, Vec<ExceptionError>> {
        let mut errors = Vec::new();
        for id in exceptions.0.keys() {
            if !rules.iter().any(|r| &r.id == id) {
                errors.push(ExceptionError {
                    rule_id: id.clone(),
                    item: 0,
                    item_name: None,
                    message: "no loaded rule has this rule_id".to_owned(),
                });
            }
        }
        let mut compiled = Vec::with_capacity(rules.len());
        for rule in &rules {
            match exceptions.0.get(&rule.id) {
                None => compiled.push(Vec::new()),
                Some(items) => match compile_items(&rule.id, items) {
                    Ok(c) => compiled.push(c),
                    Err(mut e) => {
                        errors.append(&mut e);
                        compiled.push(Vec::new());
                    }
                },
            }
        }
        if errors.is_empty() {
            Ok(RuleSet::assemble(rules, compiled))
        } else {
            Err(errors)
        }
    }

    /// Rules without exceptions.
    pub fn from_rules(rules: Vec<Rule>) -> RuleSet {
        let exceptions = rules.iter().map(|_| Vec::new()).collect();
        RuleSet::assemble(rules, exceptions)
    }

    fn assemble(rules: Vec<Rule>, exceptions: Vec<Vec<CompiledItem>>) -> RuleSet {
        let index = RuleIndex::new(rules.iter().map(|r| r.query.root()));
        RuleSet {
            rules,
            exceptions,
            index,
        }
    }

    /// How many rules the index keys on a constant precondition more selective than
    /// `event.category` (the others are evaluated against every process event).
    pub fn keyed_rules(&self) -> usize {
        self.index.keyed()
    }

    /// The rules, in load order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Number of exception items attached to each rule, in rule order.
    pub fn exception_counts(&self) -> impl Iterator<Item = usize> + '_ {
        self.exceptions.iter().map(Vec::len)
    }

    /// The rules whose query matches `doc` and none of whose exception items match it.
    /// Allocates nothing.
    pub fn evaluate<'a>(&'a self, doc: &'a Document) -> impl Iterator<Item = &'a Rule> + 'a {
        self.matching(doc).map(|(_, rule)| rule)
    }

    /// [`RuleSet::evaluate`], with each rule's index in [`RuleSet::rules`].
    pub fn matching<'a>(
        &'a self,
        doc: &'a Document,
    ) -> impl Iterator<Item = (usize, &'a Rule)> + 'a {
        let candidates = self.index.candidates(doc);
        self.rules
            .iter()
            .zip(&self.exceptions)
            .enumerate()
            .filter(move |(i, (rule, items))| {
                candidates.contains(*i)
                    && rule.query.matches(doc)
                    && !items.iter().any(|i| i.0.eval(doc))
            })
            .map(|(i, (rule, _))| (i, rule))
    }

    /// Every field the rules and their exceptions read: a document holding only these gets
    /// the same verdicts as the whole event.
    pub fn fields(&self) -> BTreeSet<&str> {
        (0..self.rules.len())
            .flat_map(|i| self.rule_fields(i))
            .collect()
    }

    /// The fields rule `i`'s query and exception items read.
    pub fn rule_fields(&self, i: usize) -> BTreeSet<&str> {
        let mut out = self.rules[i].query.fields();
        for item in &self.exceptions[i] {
            item.0.fields_into(&mut out);
        }
        out
    }

    /// The directories the `file where` rules confine their files to ([`file_dirs`]), and the
    /// file rules that are not confined (their files may be anywhere).
    ///
    /// [`file_dirs`]: crate::file_dirs
    pub fn file_dirs(&self) -> (BTreeSet<PathBuf>, Vec<&Rule>) {
        let mut dirs = BTreeSet::new();
        let mut unconfined = Vec::new();
        for rule in self.rules.iter().filter(|r| r.category() == "file") {
            match crate::file_dirs(rule) {
                Some(d) => dirs.extend(d),
                None => unconfined.push(rule),
            }
        }
        (dirs, unconfined)
    }

    /// The process names the kernel must report for these rules, with the rules one of `gates`
    /// gates taking that gate's names (see [`Prefilter::from_rules`]).
    pub fn prefilter(&self, gates: &[AnalysisGate]) -> Prefilter {
        Prefilter::from_rules(&self.rules, gates)
    }
}
