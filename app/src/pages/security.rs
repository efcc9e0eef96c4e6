//! The signed-in operator's passkeys: add one, remove one (never the last), and end every
//! session.

use leptos::{ev::SubmitEvent, prelude::*, task::spawn_local};
use leptos_meta::Title;

use crate::{
    PortalError,
    api::{
        PasskeyView, begin_add_passkey, finish_add_passkey, my_passkeys, remove_passkey,
        sign_out_everywhere,
    },
    browser,
    forms::{FieldError, FormAlert, FormError, JsControls, begin_submit, create_credential},
};

#[component]
pub fn SecurityPage() -> impl IntoView {
    let version = RwSignal::new(0u32);
    let passkeys = Resource::new(move || version.get(), |_| my_passkeys());
    let reload = move || version.update(|v| *v += 1);

    view! {
        <Title text="Security" />
        <h1>"Security"</h1>
        <section class="card" aria-labelledby="passkeys-heading">
            <h2 id="passkeys-heading">"Your passkeys"</h2>
            <Transition fallback=|| view! { <p aria-busy="true">"Loading your passkeys…"</p> }>
                {move || Suspend::new(async move {
                    match passkeys.await {
                        Ok(list) => view! { <PasskeyList list on_change=reload /> }.into_any(),
                        Err(err) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
        <AddPasskey on_added=reload />
        <SignOutEverywhere />
    }
}

#[component]
fn PasskeyList(
    list: Vec<PasskeyView>,
    on_change: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let only_one = list.len() <= 1;
    let error: FormError = RwSignal::new(None);
    let remove = move |id: String| {
        error.set(None);
        spawn_local(async move {
            match remove_passkey(id).await {
                Ok(()) => on_change(),
                Err(err) => error.set(Some(err)),
            }
        });
    };
    view! {
        <table class="data" data-testid="passkeys">
            <thead>
                <tr>
                    <th scope="col">"Name"</th>
                    <th scope="col">"Created"</th>
                    <th scope="col">"Last used"</th>
                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                </tr>
            </thead>
            <tbody>
                {list
                    .into_iter()
                    .map(|p| {
                        let id = p.id.clone();
                        let label = format!("Remove {}", p.name);
                        view! {
                            <tr>
                                <td>{p.name}</td>
                                <td>{p.created_at}</td>
                                <td>{p.last_used_at.unwrap_or_else(|| "never".to_owned())}</td>
                                <td>
                                    <button
                                        type="button"
                                        class="secondary"
                                        aria-label=label
                                        disabled=only_one
                                        on:click=move |_| remove(id.clone())
                                    >
                                        "Remove"
                                    </button>
                                </td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
        {only_one.then(|| view! {
            <p class="hint">"Your only passkey cannot be removed: add another one first."</p>
        })}
        <FormAlert error />
    }
}

#[component]
fn AddPasskey(on_added: impl Fn() + Copy + Send + Sync + 'static) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let error: FormError = RwSignal::new(None);
    let busy = RwSignal::new(false);
    let on_submit = move |ev: SubmitEvent| {
        if !begin_submit(&ev, busy, error) {
            return;
        }
        let chosen = name.get_untracked();
        spawn_local(async move {
            let result: Result<PasskeyView, PortalError> = async {
                let options = begin_add_passkey().await?;
                let credential = create_credential(&options).await?;
                finish_add_passkey(options.ceremony_id, credential, chosen).await
            }
            .await;
            busy.set(false);
            match result {
                Ok(_) => {
                    name.set(String::new());
                    on_added();
                }
                Err(err) => error.set(Some(err)),
            }
        });
    };
    view! {
        <section class="card" aria-labelledby="add-passkey-heading">
            <h2 id="add-passkey-heading">"Add a passkey"</h2>
            <p>"A second passkey (another device or a security key) keeps you in if one is lost."</p>
            <form class="stack" on:submit=on_submit novalidate>
                <JsControls>
                    <div class="field">
                        <label for="passkey-name">"Passkey name"</label>
                        <input
                            id="passkey-name"
                            type="text"
                            maxlength="100"
                            placeholder="e.g. Work laptop"
                            aria-describedby="passkey-name-error"
                            bind:value=name
                        />
                        <FieldError error field="name" id="passkey-name-error" />
                    </div>
                    <FormAlert error />
                    <button type="submit" disabled=move || busy.get()>"Add passkey"</button>
                </JsControls>
            </form>
        </section>
    }
}

#[component]
fn SignOutEverywhere() -> impl IntoView {
    let error: FormError = RwSignal::new(None);
    let on_click = move |_| {
        spawn_local(async move {
            match sign_out_everywhere().await {
                Ok(_) => browser::navigate_to("/login"),
                Err(err) => error.set(Some(err)),
            }
        });
    };
    view! {
        <section class="card" aria-labelledby="sessions-heading">
            <h2 id="sessions-heading">"Sessions"</h2>
            <p>"Signed in somewhere you no longer control? End every session, this one included."</p>
            <button type="button" class="secondary" on:click=on_click>"Sign out everywhere"</button>
            <FormAlert error />
        </section>
    }
}
