//! A download written on a blocking thread and streamed to the browser through a bounded
//! channel, so a large audit trail or bundle never sits whole in memory and a slow browser
//! holds the writer back instead of filling memory.

use std::io::Write;

use actix_web::HttpResponse;
use actix_web::http::header;

use crate::http::integrity::{ChannelWriter, ChunkStream};

/// Answers a download of `file_name` whose body `write` produces on a blocking thread. An
/// error after the answer began ends the body early (the browser then reports a failed
/// download) and is logged.
pub(super) fn download(
    content_type: &'static str,
    file_name: &str,
    write: impl FnOnce(&mut dyn Write) -> Result<(), String> + Send + 'static,
) -> HttpResponse {
    let (sender, receiver) = tokio::sync::mpsc::channel(8);
    tokio::task::spawn_blocking(move || {
        let mut sink = std::io::BufWriter::with_capacity(64 * 1024, ChannelWriter(sender.clone()));
        let written = write(&mut sink).and_then(|()| sink.flush().map_err(|error| error.to_string()));
        if let Err(error) = written {
            tracing::warn!(%error, "a console download stopped");
            let _ = sender.blocking_send(Err(std::io::Error::other(error)));
        }
    });
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file_name}\"")))
        .streaming(ChunkStream(receiver))
}
