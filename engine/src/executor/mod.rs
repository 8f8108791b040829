//! The sharded executor.

mod inbox;
mod timer;

pub use inbox::{PushError, Receiver, Sender, inbox};
pub use timer::TimerWheel;
