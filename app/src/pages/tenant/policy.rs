//! The Passkeys page's **Authenticator policy** section, and the list of users a proposed policy
//! affects (`/tenants/{id}/passkeys/affected?policy=…`).
//!
//! Saving needs a preview of exactly the values being saved: "Preview impact" runs the dry run
//! and shows what the policy does to today's passkeys; any change to the form asks for a new
//! preview before "Save policy" is offered.

use leptos::{ev::SubmitEvent, prelude::*, task::spawn_local};
use leptos_router::{hooks::use_query_map, params::ParamsMap};

use super::{TenantNav, TenantScope, users::user_path};
use crate::{
    api::{
        DryRunView, PolicyForm, PolicyView, TenantView, authenticator_policy, dry_run_policy,
        save_policy, users_affected_by_policy,
    },
    forms::{FieldError, FormAlert, FormError, JsControls, begin_submit},
};

const MODEL_RULES: &[(&str, &str)] = &[
    ("any", "Any authenticator"),
    ("allow", "Only the models listed (allow list)"),
    ("block", "Any but the models listed (block list)"),
];

/// The policy section, loaded on its own (it is saved on its own).
#[component]
pub fn PolicySection(tenant: String) -> impl IntoView {
    let tenant = StoredValue::new(tenant);
    let policy = Resource::new(move || tenant.get_value(), authenticator_policy);
    view! {
        <Suspense fallback=|| view! { <p aria-busy="true">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match policy.await {
                    Ok(view) => view! { <PolicyEditor view tenant /> }.into_any(),
                    Err(err) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn PolicyEditor(view: PolicyView, tenant: StoredValue<String>) -> impl IntoView {
    let PolicyView {
        form,
        version,
        can_configure,
        models,
        attestation_direct,
    } = view;
    let readonly = !can_configure;
    let version = RwSignal::new(version);
    let rule = RwSignal::new(form.models);
    let aaguids = RwSignal::new(form.aaguids);
    let allow_synced = RwSignal::new(form.allow_synced);
    let require_certified = RwSignal::new(form.require_certified);
    let block_existing = RwSignal::new(form.block_existing);
    let unused_days = RwSignal::new(form.unused_after_days);
    let picked = RwSignal::new(String::new());
    let error: FormError = RwSignal::new(None);
    let busy = RwSignal::new(false);
    let saved = RwSignal::new(false);
    // The dry run shown, and the form it was run for: saving needs it to be this form.
    let preview = RwSignal::new(None::<(PolicyForm, DryRunView)>);
    let current = move || PolicyForm {
        models: rule.get(),
        aaguids: aaguids.get(),
        allow_synced: allow_synced.get(),
        require_certified: require_certified.get(),
        block_existing: block_existing.get(),
        unused_after_days: unused_days.get(),
    };
    let previewed = move || preview.with(|p| p.as_ref().is_some_and(|(f, _)| *f == current()));
    let models = StoredValue::new(models);
    let names = move || {
        let listed = aaguids.get();
        models.with_value(|models| {
            listed
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|line| {
                    models
                        .iter()
                        .find(|m| m.aaguid.eq_ignore_ascii_case(line))
                        .map_or_else(
                            || format!("{line} (not in the AAGUID list)"),
                            |m| format!("{} — {line}", m.name),
                        )
                })
                .collect::<Vec<_>>()
        })
    };
    let add_model = move |_| {
        let aaguid = picked.get_untracked();
        if aaguid.is_empty() {
            return;
        }
        aaguids.update(|text| {
            if !text.lines().any(|l| l.trim().eq_ignore_ascii_case(&aaguid)) {
                if !text.trim().is_empty() && !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push_str(&aaguid);
            }
        });
    };
    let on_preview = move |ev: SubmitEvent| {
        if !begin_submit(&ev, busy, error) {
            return;
        }
        saved.set(false);
        let form = current();
        spawn_local(async move {
            match dry_run_policy(tenant.get_value(), form.clone()).await {
                Ok(run) => preview.set(Some((form, run))),
                Err(err) => error.set(Some(err)),
            }
            busy.set(false);
        });
    };
    let on_save = move |_| {
        if busy.get_untracked() || !previewed() {
            return;
        }
        busy.set(true);
        error.set(None);
        let form = current();
        spawn_local(async move {
            match save_policy(tenant.get_value(), form, version.get_untracked()).await {
                Ok((stored, new_version, run)) => {
                    version.set(new_version);
                    aaguids.set(stored.aaguids.clone());
                    preview.set(Some((stored, run)));
                    saved.set(true);
                }
                Err(err) => error.set(Some(err)),
            }
            busy.set(false);
        });
    };

    // Erased into parts: one view of every control is a type too deep for the compiler.
    let models_part = view! {
                    <div class="field">
                        <label for="policy-models">"Authenticator models"</label>
                        <select id="policy-models" disabled=readonly bind:value=rule>
                            {MODEL_RULES.iter().map(|(v, l)| view! { <option value=*v selected=move || rule.get() == *v>{*l}</option> }).collect_view()}
                        </select>
                    </div>
                    <Show when=move || rule.get() != "any">
                        <div class="field wide">
                            <label for="policy-aaguids">"Models (AAGUIDs)"</label>
                            <textarea id="policy-aaguids" rows="4" readonly=readonly aria-describedby="policy-aaguids-hint policy-aaguids-error" bind:value=aaguids></textarea>
                            <p class="hint" id="policy-aaguids-hint">
                                "One AAGUID per line. Pick a provider below to add its AAGUID, or type one. "
                                "Without attestation an AAGUID is the authenticator's own claim."
                            </p>
                            <FieldError error field="aaguids" id="policy-aaguids-error" />
                            <ul class="hint" data-testid="policy-model-names">
                                {move || names().into_iter().map(|n| view! { <li>{n}</li> }).collect_view()}
                            </ul>
                        </div>
                        {can_configure.then(|| view! {
                            <div class="field wide">
                                <label for="policy-model-picker">"Add a model by provider"</label>
                                <div class="inline">
                                    <select id="policy-model-picker" bind:value=picked>
                                        <option value="">"Choose a provider…"</option>
                                        {models.with_value(|models| models.iter().map(|m| view! {
                                            <option value=m.aaguid.clone()>{format!("{} ({})", m.name, &m.aaguid[..8])}</option>
                                        }).collect_view())}
                                    </select>
                                    <button type="button" class="secondary" on:click=add_model>"Add model"</button>
                                </div>
                            </div>
                        })}
                    </Show>
    }
    .into_any();
    let checks_part = view! {
                    <div class="field checkbox">
                        <input id="policy-allow-synced" type="checkbox" disabled=readonly aria-describedby="policy-synced-hint" bind:checked=allow_synced />
                        <label for="policy-allow-synced">"Allow synced passkeys"</label>
                    </div>
                    <p class="hint" id="policy-synced-hint">
                        "Synced passkeys (iCloud Keychain, Google Password Manager, password managers) survive a lost device; "
                        "device-bound ones (most security keys) never leave it. Unticked: device-bound only."
                    </p>
                    <div class="field checkbox">
                        <input id="policy-require-certified" type="checkbox" disabled=readonly aria-describedby="policy-certified-hint policy-certified-error" bind:checked=require_certified />
                        <label for="policy-require-certified">"Require a certified authenticator"</label>
                    </div>
                    <p class="hint" id="policy-certified-hint">
                        {if attestation_direct {
                            "Registration verifies the attestation against the instance's FIDO metadata and refuses models it reports revoked or compromised. Saving is refused until an instance admin has imported metadata. Most synced passkeys send no attestation and are refused."
                        } else {
                            "Needs attestation \"direct\" in the ceremony options above, and FIDO metadata imported by an instance admin."
                        }}
                    </p>
                    <FieldError error field="require_certified" id="policy-certified-error" />
                    <div class="field checkbox">
                        <input id="policy-block-existing" type="checkbox" disabled=readonly aria-describedby="policy-existing-hint" bind:checked=block_existing />
                        <label for="policy-block-existing">"Block existing passkeys that no longer comply"</label>
                    </div>
                    <p class="hint" id="policy-existing-hint">
                        "Off: passkeys registered before still sign in and are listed under Health. "
                        "On: they are refused at their next sign-in; users left with none need a recovery token."
                    </p>
                    <div class="field">
                        <label for="policy-unused-days">"Flag passkeys unused for (days)"</label>
                        <input id="policy-unused-days" type="number" min="7" max="3650" readonly=readonly aria-describedby="policy-unused-error" bind:value=unused_days />
                        <FieldError error field="unused_after_days" id="policy-unused-error" />
                    </div>
    }
    .into_any();
    let form = view! {
            <form class="stack" on:submit=on_preview novalidate>
                <JsControls>
                    {models_part}
                    {checks_part}
                    <FormAlert error />
                    <div class="inline">
                        <button type="submit" class="secondary" disabled=move || busy.get()>"Preview impact"</button>
                        {can_configure.then(|| view! {
                            <button type="button" on:click=on_save disabled=move || busy.get() || !previewed()>"Save policy"</button>
                        })}
                        <p class="hint" role="status">
                            {move || if saved.get() && previewed() {
                                "Policy saved."
                            } else if can_configure && !previewed() {
                                "Preview the impact of these values to save them."
                            } else {
                                ""
                            }}
                        </p>
                    </div>
                </JsControls>
            </form>
    }
    .into_any();
    view! {
        <section class="card stack" aria-labelledby="policy-heading">
            <h2 id="policy-heading">"Authenticator policy"</h2>
            <p class="hint">
                "Which authenticators may hold your users' passkeys. Enforced by Latchkey at registration and, "
                "if you choose, at sign-in for passkeys registered before. Preview what a change does before you save it."
            </p>
            {form}
            {move || preview.get().map(|(_, run)| view! { <DryRunReport run tenant=tenant.get_value() /> }.into_any())}
        </section>
    }
}

#[component]
fn DryRunReport(run: DryRunView, tenant: String) -> impl IntoView {
    let verb = if run.blocks_existing {
        "would be refused at their next sign-in"
    } else {
        "would be flagged (they still sign in)"
    };
    let affected_href = format!("/tenants/{tenant}/passkeys/affected?policy={}", run.link);
    view! {
        <div class="stack" data-testid="policy-dry-run" aria-live="polite">
            <p data-testid="dry-run-summary">
                {format!(
                    "{} of {} active passkeys ({}) {verb}.",
                    run.refused_passkeys, run.active_passkeys, users(run.affected_users)
                )}
            </p>
            {(run.users_left_without_passkey > 0).then(|| view! {
                <p class="error" data-testid="dry-run-lockout">
                    {format!(
                        "{} would be left with no usable passkey{}.",
                        users(run.users_left_without_passkey),
                        if run.blocks_existing { " and cannot sign in until they register an allowed one" } else { " once you block existing passkeys" }
                    )}
                </p>
            })}
            {(!run.by_model.is_empty()).then(|| view! {
                <table class="data" data-testid="dry-run-models">
                    <thead>
                        <tr><th scope="col">"Model"</th><th scope="col">"Passkeys"</th><th scope="col">"Users"</th></tr>
                    </thead>
                    <tbody>
                        {run.by_model.into_iter().map(|m| view! {
                            <tr><td>{m.name}</td><td>{m.passkeys}</td><td>{m.users}</td></tr>
                        }).collect_view()}
                    </tbody>
                </table>
                <p><a href=affected_href>"List the affected users"</a></p>
            })}
        </div>
    }
    .into_any()
}

/// "1 user", "2 users".
fn users(n: u64) -> String {
    if n == 1 {
        "1 user".to_owned()
    } else {
        format!("{n} users")
    }
}

/// The users a proposed policy affects, 50 per page.
#[component]
pub fn AffectedUsersPage() -> impl IntoView {
    let query = use_query_map();
    view! { <TenantScope title="Affected users" page=move |view| view! { <AffectedUsers view query /> } /> }
}

#[component]
fn AffectedUsers(view: TenantView, query: Memo<ParamsMap>) -> impl IntoView {
    let TenantView { id, name, .. } = view;
    let tenant = StoredValue::new(id.clone());
    let policy = move || query.read().get("policy").unwrap_or_default();
    let after = move || query.read().get("after");
    let page = Resource::new(
        move || (policy(), after()),
        move |(policy, after)| users_affected_by_policy(tenant.get_value(), policy, after),
    );
    view! {
        <TenantNav id=id.clone() name=name.clone() current="Passkeys" />
        <h1>"Users the proposed policy affects"</h1>
        <p><a href=format!("/tenants/{id}/passkeys")>"Back to the passkey settings"</a></p>
        <section class="card table-card" aria-label="Affected users">
            <Transition fallback=|| view! { <p aria-busy="true">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match page.await {
                        Ok(result) => {
                            let next = result.next.map(|n| format!(
                                "/tenants/{}/passkeys/affected?policy={}&after={n}", tenant.get_value(), policy()
                            ));
                            view! {
                                <ul data-testid="affected-users">
                                    {result.users.into_iter().map(|(user_id, username)| {
                                        let href = user_path(&tenant.get_value(), &user_id);
                                        let label = username.map_or_else(|| user_id.clone(), |u| format!("{user_id} ({u})"));
                                        view! { <li><a href=href>{label}</a></li> }
                                    }).collect_view()}
                                </ul>
                                {next.map(|href| view! { <p><a href=href rel="next">"Next page"</a></p> })}
                            }.into_any()
                        }
                        Err(err) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}
