//! Outgoing messages and the injected-bug switch.

use super::*;

impl Replica {
    pub(super) fn push(&mut self, to: NodeId, term: Term, body: MessageBody, after_persist: bool) {
        let m = Message {
            partition: self.config.partition,
            from: self.config.id,
            to,
            term,
            body,
        };
        if after_persist {
            self.persisted_messages.push(m);
        } else {
            self.messages.push(m);
        }
    }

    pub(super) fn send(&mut self, to: NodeId, body: MessageBody) {
        self.push(to, self.term, body, false);
    }

    pub(super) fn send_after_persist(&mut self, to: NodeId, body: MessageBody) {
        self.push(to, self.term, body, true);
    }

    #[cfg(feature = "sim-bugs")]
    pub(super) fn bug(&self, bug: InjectedBug) -> bool {
        self.config.bug == Some(bug)
    }
}
