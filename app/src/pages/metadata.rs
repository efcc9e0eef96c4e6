//! The instance's FIDO metadata: the current BLOB (serial, `nextUpdate`, staleness) and, for
//! instance admins, the upload of a newer one. What a certified registration checks against.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::{BlobView, metadata_status};

#[component]
pub fn MetadataPage() -> impl IntoView {
    let params = use_query_map();
    let status = Resource::new(|| (), |_| metadata_status());
    // The upload's outcome, as the form post's redirect reports it.
    let outcome = move || {
        params.with(|p| {
            if let Some(serial) = p.get("imported") {
                Some(
                    view! {
                        <p class="success" role="status">"Imported BLOB no. " {serial} "."</p>
                    }
                    .into_any(),
                )
            } else {
                p.get("error").map(|message| {
                    let message = if message == "internal" {
                        "Something went wrong on the server; nothing was imported.".to_owned()
                    } else {
                        message
                    };
                    view! { <p class="error" role="alert">{message}</p> }.into_any()
                })
            }
        })
    };

    view! {
        <Title text="FIDO metadata" />
        <h1>"FIDO metadata"</h1>
        <p>
            "The FIDO Alliance's Metadata Service lists certified authenticator models, their "
            "attestation roots and their security status. With it, a tenant that asks for "
            "attestation \"direct\" records which passkeys are certified, and can require it. "
            "Latchkey never fetches it: download the BLOB from "
            <code>"https://mds.fidoalliance.org/"</code>
            " and import it here or with "
            <code>"latchkey mds import FILE"</code>
            ". Its signature is checked against the FIDO root certificate built into Latchkey; "
            "a BLOB that does not verify changes nothing."
        </p>
        {outcome}
        <Transition fallback=|| view! { <p aria-busy="true">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match status.await {
                    Ok(view) => view! {
                        <Current current=view.current />
                        {view.can_import.then(Upload)}
                    }
                    .into_any(),
                    Err(err) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn Current(current: Option<BlobView>) -> impl IntoView {
    let Some(blob) = current else {
        return view! {
            <section class="card" aria-labelledby="metadata-current">
                <h2 id="metadata-current">"Current BLOB"</h2>
                <p>
                    "No metadata has been imported. Provider names still come from the AAGUID "
                    "list; certification cannot be checked or required."
                </p>
            </section>
        }
        .into_any();
    };
    view! {
        <section class="card" aria-labelledby="metadata-current">
            <h2 id="metadata-current">"Current BLOB"</h2>
            {blob.stale.then(|| view! {
                <p class="warning" role="status">
                    "This BLOB is stale: its next update was due " {blob.next_update.clone()}
                    ". FIDO has published a newer one, which may revoke models; import it."
                </p>
            })}
            <dl class="facts">
                <dt>"Serial number"</dt>
                <dd>{blob.serial}</dd>
                <dt>"Next update"</dt>
                <dd>{blob.next_update}</dd>
                <dt>"Authenticator models"</dt>
                <dd>{blob.models}</dd>
                <dt>"Imported"</dt>
                <dd>{blob.imported_at} " by " {blob.imported_by}</dd>
                <dt>"SHA-256"</dt>
                <dd><code>{blob.sha256}</code></dd>
            </dl>
        </section>
    }
    .into_any()
}

#[component]
fn Upload() -> impl IntoView {
    view! {
        <section class="card" aria-labelledby="metadata-upload">
            <h2 id="metadata-upload">"Import a BLOB"</h2>
            <p>
                "Only a BLOB newer than the current one is imported. Passkeys of models it "
                "revokes or reports compromised are flagged in each tenant's health queue."
            </p>
            // A plain form: it posts the file without the page's script.
            <form
                class="stack"
                method="post"
                action="/portal/metadata"
                enctype="multipart/form-data"
            >
                <div class="field">
                    <label for="metadata-blob">"BLOB file"</label>
                    <input id="metadata-blob" name="blob" type="file" required />
                </div>
                <button type="submit">"Import BLOB"</button>
            </form>
        </section>
    }
}
