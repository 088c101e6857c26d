//! Per-rule alert budget: the streaming analogue of Kibana's "at most 100 alerts per 5-minute
//! run". Within a window a rule raises at most `max_alerts`; when a window that suppressed
//! alerts closes, the caller gets one summary saying how many and for which rule.
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetConfig {
    pub max_alerts: u64,
    pub window: Duration,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            max_alerts: 100,
            window: Duration::from_secs(300),
        }
    }
}

/// What a closed window suppressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppressed {
    pub rule_id: String,
    pub count: u64,
    pub window_start: Instant,
    pub window_end: Instant,
}

#[derive(Debug)]
struct Window {
    start: Instant,
    alerted: u64,
    suppressed: u64,
}

#[derive(Debug)]
pub struct Budget {
    cfg: BudgetConfig,
    windows: HashMap<String, Window>,
    suppressed_total: u64,
}

impl Budget {
    pub fn new(cfg: BudgetConfig) -> Self {
        Self {
            cfg,
            windows: HashMap::new(),
            suppressed_total: 0,
        }
    }

    /// Whether rule `rule_id` may alert at `now`. A window that ended before `now` is closed
    /// first; if it suppressed anything, that summary is returned too.
    pub fn admit(&mut self, rule_id: &str, now: Instant) -> (bool, Option<Suppressed>) {
        let closed = self.close_if_due(rule_id, now);
        let window = self.windows.entry(rule_id.to_owned()).or_insert(Window {
            start: now,
            alerted: 0,
            suppressed: 0,
        });
        let admitted = window.alerted < self.cfg.max_alerts;
        if admitted {
            window.alerted += 1;
        } else {
            window.suppressed += 1;
            self.suppressed_total += 1;
        }
        (admitted, closed)
    }

    /// Closes every window that has ended by `now` (called periodically, and at shutdown with a
    /// time far enough ahead), returning the summaries of those that suppressed alerts.
    pub fn close_due(&mut self, now: Instant) -> Vec<Suppressed> {
        let ids: Vec<String> = self.windows.keys().cloned().collect();
        ids.iter()
            .filter_map(|id| self.close_if_due(id, now))
            .collect()
    }

    /// Closes every window now, whatever its age (shutdown).
    pub fn close_all(&mut self, now: Instant) -> Vec<Suppressed> {
        let mut out: Vec<Suppressed> = self
            .windows
            .drain()
            .filter(|(_, w)| w.suppressed > 0)
            .map(|(rule_id, w)| Suppressed {
                rule_id,
                count: w.suppressed,
                window_start: w.start,
                window_end: now,
            })
            .collect();
        out.sort_by(|a, b| a.rule_id.cmp(&b.rule_id));
        out
    }

    pub fn suppressed_total(&self) -> u64 {
        self.suppressed_total
    }

    fn close_if_due(&mut self, rule_id: &str, now: Instant) -> Option<Suppressed> {
        let window = self.windows.get(rule_id)?;
        let end = window.start + self.cfg.window;
        if now < end {
            return None;
        }
        let window = self.windows.remove(rule_id)?;
        (window.suppressed > 0).then(|| Suppressed {
            rule_id: rule_id.to_owned(),
            count: window.suppressed,
            window_start: window.start,
            window_end: end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hundred_fifty_in_a_window_gives_hundred_and_one_summary_of_fifty() {
        let mut b = Budget::new(BudgetConfig::default());
        let t0 = Instant::now();
        let admitted = (0..150)
            .filter(|i| b.admit("r", t0 + Duration::from_millis(*i)).0)
            .count();
        assert_eq!(admitted, 100);
        assert!(b.close_due(t0 + Duration::from_secs(299)).is_empty());
        let closed = b.close_due(t0 + Duration::from_secs(300));
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].count, 50);
        assert_eq!(closed[0].rule_id, "r");
        assert_eq!(b.suppressed_total(), 50);
    }

    #[test]
    fn rules_have_separate_budgets_and_windows_restart() {
        let cfg = BudgetConfig {
            max_alerts: 1,
            window: Duration::from_secs(10),
        };
        let mut b = Budget::new(cfg);
        let t0 = Instant::now();
        assert!(b.admit("a", t0).0);
        assert!(b.admit("b", t0).0);
        assert!(!b.admit("a", t0).0);
        let (ok, closed) = b.admit("a", t0 + Duration::from_secs(10));
        assert!(ok, "a new window admits again");
        assert_eq!(closed.map(|s| s.count), Some(1));
        assert!(b.close_all(t0 + Duration::from_secs(11)).is_empty());
    }
}
