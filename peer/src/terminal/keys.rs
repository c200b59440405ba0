//! Key handlers that keep the editor answering whatever is pasted into it.
//!
//! - **The line limit.** rustyline redraws the whole line as it grows, so typing (or a paste
//!   the terminal sends as keys) costs more with every key: a megabyte took minutes, and
//!   Ctrl-C waited behind it. Once the line is past [`MAX_LINE_LEN`] bytes, keys that would add
//!   to it are dropped at once, without a redraw; the hint after the line says so
//!   (`assist.rs`), Enter refuses the line and Ctrl-C clears it. A bracketed paste arrives in
//!   one piece and is refused at Enter. (The notice is a hint, not a printed line: rustyline's
//!   printer waits for the editor, and this handler runs inside it.)
//! - **Where a paste began.** A bracketed paste at an empty prompt is several commands; after
//!   `chat message bob ` it is one message (`talk.rs`). The editor only hands back the finished
//!   line, so the start of each paste is noted here.
//! - **Ctrl-C** clears a half-typed line, as bash does, and quits only on an empty one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustyline::{
    Cmd, ConditionalEventHandler, Event, EventContext, EventHandler, KeyCode, KeyEvent, Modifiers,
    Movement, RepeatCount,
};

use crate::input::MAX_LINE_LEN;

/// What the handlers noted about the line being edited; cleared for each new line.
#[derive(Default)]
pub struct LineNotes {
    /// A bracketed paste began while the line was empty.
    pasted_at_start: AtomicBool,
}

impl LineNotes {
    pub fn clear(&self) {
        self.pasted_at_start.store(false, Ordering::Relaxed);
    }

    pub fn pasted_at_start(&self) -> bool {
        self.pasted_at_start.load(Ordering::Relaxed)
    }
}

/// Installs the handlers on `editor`.
pub fn bind<H: rustyline::Helper, I: rustyline::history::History>(
    editor: &mut rustyline::Editor<H, I>,
    notes: Arc<LineNotes>,
) {
    editor.bind_sequence(Event::Any, EventHandler::Conditional(Box::new(LineLimit)));
    editor.bind_sequence(
        KeyEvent(KeyCode::BracketedPasteStart, Modifiers::NONE),
        EventHandler::Conditional(Box::new(PasteStart {
            notes: notes.clone(),
        })),
    );
    editor.bind_sequence(
        KeyEvent::ctrl('C'),
        EventHandler::Conditional(Box::new(CtrlC { notes })),
    );
}

/// Drops keys that would add to a line already past the limit.
struct LineLimit;

impl ConditionalEventHandler for LineLimit {
    fn handle(&self, evt: &Event, _: RepeatCount, _: bool, ctx: &EventContext) -> Option<Cmd> {
        let adds = matches!(
            evt.get(0),
            Some(KeyEvent(
                KeyCode::Char(_),
                Modifiers::NONE | Modifiers::SHIFT
            ))
        );
        (adds && ctx.line().len() > MAX_LINE_LEN).then_some(Cmd::Noop)
    }
}

/// Notes whether a bracketed paste begins on an empty line, then lets rustyline read it.
struct PasteStart {
    notes: Arc<LineNotes>,
}

impl ConditionalEventHandler for PasteStart {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, ctx: &EventContext) -> Option<Cmd> {
        if ctx.line().trim().is_empty() {
            self.notes.pasted_at_start.store(true, Ordering::Relaxed);
        }
        None
    }
}

/// Ctrl-C: clears a half-typed line; on an empty one, quits (rustyline's interrupt).
struct CtrlC {
    notes: Arc<LineNotes>,
}

impl ConditionalEventHandler for CtrlC {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, ctx: &EventContext) -> Option<Cmd> {
        if ctx.line().is_empty() {
            return None;
        }
        self.notes.clear();
        Some(Cmd::Kill(Movement::WholeLine))
    }
}
