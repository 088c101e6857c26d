//! The kernel programs' diagnostics (aya-log records: their rare failures) forwarded to the
//! agent's `tracing` output, under the target `boot_copy::kernel`.
use aya::Ebpf;
use aya_log::EbpfLogger;

/// A `log` sink that hands records to `tracing`.
pub struct ToTracing;

impl log::Log for ToTracing {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        let message = record.args();
        match record.level() {
            log::Level::Error => tracing::error!(target: "boot_copy::kernel", "{message}"),
            log::Level::Warn => tracing::warn!(target: "boot_copy::kernel", "{message}"),
            log::Level::Info => tracing::info!(target: "boot_copy::kernel", "{message}"),
            log::Level::Debug => tracing::debug!(target: "boot_copy::kernel", "{message}"),
            log::Level::Trace => tracing::trace!(target: "boot_copy::kernel", "{message}"),
        }
    }

    fn flush(&self) {}
}

/// The reader of the programs' log ring.
pub struct KernelLog(EbpfLogger<ToTracing>);

impl KernelLog {
    /// Takes the log ring from the loaded object; `None` (with a warning) if it cannot, which
    /// only loses the messages: every failure they report is counted as well.
    pub fn take(ebpf: &mut Ebpf) -> Option<Self> {
        match EbpfLogger::init_with_logger(ebpf, ToTracing) {
            Ok(logger) => Some(Self(logger)),
            Err(e) => {
                tracing::warn!("the kernel programs' diagnostics are not read: {e}");
                None
            }
        }
    }

    /// Forwards every record waiting in the ring.
    pub fn flush(&mut self) {
        self.0.flush();
    }
}
