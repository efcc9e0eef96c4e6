//! A tenant's passkey configuration: every setting of the spec, the Android and iOS helpers, and
//! errors shown next to the field they concern. Read-only for roles that may not change it.

use leptos::{ev::SubmitEvent, prelude::*, task::spawn_local};

use super::{TenantNav, TenantScope};
use crate::{
    PortalError,
    api::{
        AndroidOrigin, ConfigForm, FindingView, OriginCheckView, TenantView, android_origin_for,
        asset_links, check_origins, save_passkey_config, well_known_webauthn,
    },
    forms::{FieldError, FormAlert, FormError, JsControls, begin_submit},
};

#[component]
pub fn PasskeysPage() -> impl IntoView {
    view! { <TenantScope title="Passkeys" page=|view| view! { <PasskeySettings view /> } /> }
}

/// A `<select>` bound to a signal, with (value, label) options. Each option also carries
/// `selected`: the server-rendered page shows the stored choice before the script binds the
/// select's value (or without script).
#[component]
fn Choice(
    id: &'static str,
    label: &'static str,
    value: RwSignal<String>,
    options: &'static [(&'static str, &'static str)],
    disabled: bool,
    error: FormError,
    field: &'static str,
    error_id: &'static str,
) -> impl IntoView {
    view! {
        <div class="field">
            <label for=id>{label}</label>
            <select id=id disabled=disabled aria-describedby=error_id bind:value=value>
                {options.iter().map(|(v, l)| view! { <option value=*v selected=move || value.get() == *v>{*l}</option> }).collect_view()}
            </select>
            <FieldError error field id=error_id />
        </div>
    }
}

const ATTESTATION: &[(&str, &str)] = &[
    ("none", "None (recommended)"),
    ("indirect", "Indirect"),
    ("direct", "Direct"),
];
const REQUIREMENT: &[(&str, &str)] = &[
    ("required", "Required"),
    ("preferred", "Preferred"),
    ("discouraged", "Discouraged"),
];
const ATTACHMENT: &[(&str, &str)] = &[
    ("any", "Any"),
    ("platform", "Platform (built into the device)"),
    ("cross_platform", "Cross-platform (security keys, phones)"),
];
const ALGORITHMS: &[(&str, &str)] = &[
    ("ES256", "ES256 (ECDSA P-256, −7)"),
    ("ES384", "ES384 (ECDSA P-384, −35)"),
    ("RS256", "RS256 (RSA PKCS#1, −257)"),
];

#[component]
fn PasskeySettings(view: TenantView) -> impl IntoView {
    let TenantView {
        id,
        name,
        can_configure,
        config,
        android,
        ..
    } = view;
    let readonly = !can_configure;
    let saved_rp_id = RwSignal::new(config.rp_id.clone());
    let version = RwSignal::new(config.version);
    let enabled = RwSignal::new(config.enabled);
    let rp_id = RwSignal::new(config.rp_id.clone());
    let rp_name = RwSignal::new(config.rp_name.clone());
    let origins = RwSignal::new(config.origins.clone());
    let related_origins = RwSignal::new(config.related_origins.clone());
    let ios_app_ids = RwSignal::new(config.ios_app_ids.clone());
    let attestation = RwSignal::new(config.attestation.clone());
    let user_verification = RwSignal::new(config.user_verification.clone());
    let resident_key = RwSignal::new(config.resident_key.clone());
    let attachment = RwSignal::new(config.attachment.clone());
    let algorithms = RwSignal::new(config.algorithms.clone());
    let timeout = RwSignal::new(config.timeout_seconds.clone());
    let android_list = RwSignal::new(android);
    let fingerprint = RwSignal::new(String::new());
    let package = RwSignal::new(String::new());
    let error: FormError = RwSignal::new(None);
    let fingerprint_error: FormError = RwSignal::new(None);
    let busy = RwSignal::new(false);
    let saved = RwSignal::new(false);
    let tenant = StoredValue::new(id.clone());
    // Bumped by every save: the well-known document follows the saved related origins.
    let saves = RwSignal::new(0u32);
    let well_known = Resource::new(
        move || saves.get(),
        move |_| well_known_webauthn(tenant.get_value()),
    );

    let on_submit = move |ev: SubmitEvent| {
        if !begin_submit(&ev, busy, error) {
            return;
        }
        saved.set(false);
        let changing_rp = !saved_rp_id.get_untracked().is_empty()
            && saved_rp_id.get_untracked() != rp_id.get_untracked().trim();
        if changing_rp
            && !browser_confirm(&format!(
                "Changing the Relying Party ID from {} orphans every passkey registered for it: \
             those users can no longer sign in with them. Change it anyway?",
                saved_rp_id.get_untracked()
            ))
        {
            busy.set(false);
            return;
        }
        let form = ConfigForm {
            enabled: enabled.get_untracked(),
            rp_id: rp_id.get_untracked(),
            rp_name: rp_name.get_untracked(),
            origins: origins.get_untracked(),
            related_origins: related_origins.get_untracked(),
            ios_app_ids: ios_app_ids.get_untracked(),
            attestation: attestation.get_untracked(),
            user_verification: user_verification.get_untracked(),
            resident_key: resident_key.get_untracked(),
            attachment: attachment.get_untracked(),
            algorithms: algorithms.get_untracked(),
            timeout_seconds: timeout.get_untracked(),
            version: version.get_untracked(),
            // The dialog above asked; the service refuses an unconfirmed change whatever sends it.
            confirm_rp_id_change: changing_rp,
        };
        spawn_local(async move {
            match save_passkey_config(tenant.get_value(), form).await {
                Ok(view) => {
                    // Show what was stored (normalised origins, sorted algorithms).
                    let c = view.config;
                    saved_rp_id.set(c.rp_id.clone());
                    version.set(c.version);
                    rp_id.set(c.rp_id);
                    origins.set(c.origins);
                    related_origins.set(c.related_origins);
                    ios_app_ids.set(c.ios_app_ids);
                    algorithms.set(c.algorithms);
                    saves.update(|n| *n += 1);
                    android_list.set(view.android);
                    saved.set(true);
                }
                Err(err) => error.set(Some(err)),
            }
            busy.set(false);
        });
    };

    let add_android = move |_| {
        fingerprint_error.set(None);
        let value = fingerprint.get_untracked();
        spawn_local(async move {
            match android_origin_for(value).await {
                Ok(AndroidOrigin {
                    origin,
                    fingerprint: shown,
                }) => {
                    origins.update(|text| {
                        if !text.lines().any(|l| l.trim() == origin) {
                            if !text.trim().is_empty() && !text.ends_with('\n') {
                                text.push('\n');
                            }
                            text.push_str(&origin);
                        }
                    });
                    android_list.update(|list| {
                        if !list.iter().any(|a| a.origin == origin) {
                            list.push(AndroidOrigin {
                                origin,
                                fingerprint: shown,
                            });
                        }
                    });
                    fingerprint.set(String::new());
                }
                Err(mut err) => {
                    err.field = Some("fingerprint".into());
                    fingerprint_error.set(Some(err));
                }
            }
        });
    };

    // The document is the core's (`latchkey_core::tenants::config::asset_links`), asked for
    // again as the package name and the fingerprints change.
    let assetlinks = Resource::new(
        move || {
            let fingerprints: Vec<String> = android_list
                .get()
                .into_iter()
                .map(|a| a.fingerprint)
                .collect();
            (package.get(), fingerprints)
        },
        |(package, fingerprints)| asset_links(package, fingerprints),
    );

    view! {
        <TenantNav id=id.clone() name=name.clone() current="Passkeys" />
        <h1>"Passkeys"</h1>
        {readonly.then(|| view! { <p class="note">"Your role can read this configuration but not change it."</p> })}
        <form class="stack" on:submit=on_submit novalidate>
            <JsControls>
                <section class="card stack" aria-labelledby="rp-heading">
                    <h2 id="rp-heading">"Relying party"</h2>
                    <div class="field checkbox">
                        <input id="enabled" type="checkbox" disabled=readonly aria-describedby="enabled-error" bind:checked=enabled />
                        <label for="enabled">"Enable passkeys"</label>
                    </div>
                    <FieldError error field="enabled" id="enabled-error" />
                    <div class="field">
                        <label for="rp-id">"Relying Party ID"</label>
                        <input id="rp-id" type="text" placeholder="example.com" readonly=readonly aria-describedby="rp-id-hint rp-id-error" bind:value=rp_id />
                        <p class="hint" id="rp-id-hint">
                            "The domain your users sign in on. Passkeys are bound to it: changing it later orphans every passkey registered so far."
                        </p>
                        <FieldError error field="rp_id" id="rp-id-error" />
                    </div>
                    <div class="field">
                        <label for="rp-name">"Relying Party name"</label>
                        <input id="rp-name" type="text" maxlength="100" placeholder=name.clone() readonly=readonly aria-describedby="rp-name-error" bind:value=rp_name />
                        <FieldError error field="rp_name" id="rp-name-error" />
                    </div>
                </section>

                <section class="card stack" aria-labelledby="origins-heading">
                    <h2 id="origins-heading">"Where users sign in"</h2>
                    <div class="field wide">
                        <label for="origins">"Expected origins"</label>
                        <textarea id="origins" rows="5" readonly=readonly aria-describedby="origins-hint origins-error" bind:value=origins></textarea>
                        <p class="hint" id="origins-hint">
                            "One per line: web origins like https://example.com or https://auth.example.com (the Relying Party ID or a subdomain), and Android apps as android:apk-key-hash:…"
                        </p>
                        <FieldError error field="origins" id="origins-error" />
                    </div>
                    <Show when=move || !android_list.get().is_empty()>
                        <ul class="android-origins" data-testid="android-origins">
                            {move || android_list.get().into_iter().map(|a| view! {
                                <li><code>{a.origin}</code><br /><small>"Signing certificate SHA-256: " {a.fingerprint}</small></li>
                            }).collect_view()}
                        </ul>
                    </Show>
                    <div class="field wide">
                        <label for="related-origins">"Related origins"</label>
                        <textarea id="related-origins" rows="3" readonly=readonly aria-describedby="related-origins-hint related-origins-error" bind:value=related_origins></textarea>
                        <p class="hint" id="related-origins-hint">
                            "Web origins on other sites that may use this Relying Party ID, one per line (https://shop.example.de for example.com). Browsers allow them only when the RP ID's site serves /.well-known/webauthn (below), and follow at most 5 different site names."
                        </p>
                        <FieldError error field="related_origins" id="related-origins-error" />
                    </div>
                    <div class="field wide">
                        <label for="ios-app-ids">"iOS app IDs"</label>
                        <textarea id="ios-app-ids" rows="2" readonly=readonly aria-describedby="ios-app-ids-hint ios-app-ids-error" bind:value=ios_app_ids></textarea>
                        <p class="hint" id="ios-app-ids-hint">
                            "One per line, TEAMID.bundle.id (ABCDE12345.com.example.app): the origin doctor checks that the apple-app-site-association file lists them."
                        </p>
                        <FieldError error field="ios_app_ids" id="ios-app-ids-error" />
                    </div>
                    {can_configure.then(|| view! {
                        <div class="field wide">
                            <label for="fingerprint">"Android signing certificate SHA-256"</label>
                            <div class="inline">
                                <input id="fingerprint" type="text" placeholder="AA:BB:CC:…" aria-describedby="fingerprint-hint fingerprint-error" bind:value=fingerprint />
                                <button type="button" class="secondary" on:click=add_android>"Add Android origin"</button>
                            </div>
                            <p class="hint" id="fingerprint-hint">
                                "As printed by keytool -list -v or ./gradlew signingReport. Use the release (or Play App Signing) certificate."
                            </p>
                            <FieldError error=fingerprint_error field="fingerprint" id="fingerprint-error" />
                        </div>
                    })}
                </section>

                <section class="card stack" aria-labelledby="ceremony-heading">
                    <h2 id="ceremony-heading">"Ceremony options"</h2>
                    <div class="grid">
                        <Choice id="attestation" label="Attestation" value=attestation options=ATTESTATION disabled=readonly error field="attestation" error_id="attestation-error" />
                        <Choice id="user-verification" label="User verification" value=user_verification options=REQUIREMENT disabled=readonly error field="user_verification" error_id="user-verification-error" />
                        <Choice id="resident-key" label="Resident key" value=resident_key options=REQUIREMENT disabled=readonly error field="resident_key" error_id="resident-key-error" />
                        <Choice id="attachment" label="Authenticator attachment" value=attachment options=ATTACHMENT disabled=readonly error field="attachment" error_id="attachment-error" />
                    </div>
                    <fieldset class="field" aria-describedby="algorithms-error">
                        <legend>"Algorithms"</legend>
                        {ALGORITHMS.iter().map(|(value, label)| {
                            let value = *value;
                            let id = format!("alg-{value}");
                            view! {
                                <div class="field checkbox">
                                    <input
                                        id=id.clone()
                                        type="checkbox"
                                        disabled=readonly
                                        prop:checked=move || algorithms.get().iter().any(|a| a == value)
                                        on:change=move |ev| {
                                            let on = event_target_checked(&ev);
                                            algorithms.update(|list| {
                                                list.retain(|a| a != value);
                                                if on { list.push(value.to_owned()); }
                                            });
                                        }
                                    />
                                    <label for=id>{*label}</label>
                                </div>
                            }
                        }).collect_view()}
                        <FieldError error field="algorithms" id="algorithms-error" />
                    </fieldset>
                    <div class="field">
                        <label for="timeout">"Timeout (seconds)"</label>
                        <input id="timeout" type="number" min="30" max="600" readonly=readonly aria-describedby="timeout-error" bind:value=timeout />
                        <FieldError error field="timeout_seconds" id="timeout-error" />
                    </div>
                </section>

                <FormAlert error />
                {can_configure.then(|| view! {
                    <div class="inline">
                        <button type="submit" disabled=move || busy.get()>"Save"</button>
                        <p class="hint" role="status">{move || saved.get().then_some("Saved.")}</p>
                    </div>
                })}
            </JsControls>
        </form>

        <super::policy::PolicySection tenant=tenant.get_value() />

        <section class="card stack" aria-labelledby="apps-heading">
            <h2 id="apps-heading">"App setup"</h2>
            <p>"Android: serve this at https://" {move || rp_id.get()} "/.well-known/assetlinks.json."</p>
            <div class="field">
                <label for="package">"Android package name"</label>
                <input id="package" type="text" placeholder="com.example.app" bind:value=package />
            </div>
            <Transition fallback=|| ()>
                <pre data-testid="assetlinks" tabindex="0" aria-label="assetlinks.json"><code>
                    {move || assetlinks.get().map(|document| document.unwrap_or_else(|err| err.message))}
                </code></pre>
            </Transition>
            <p>"iOS: add this entry to the app's Associated Domains entitlement:"</p>
            <pre data-testid="ios-entitlement"><code>{move || format!("webcredentials:{}", rp_id.get())}</code></pre>
            <p>"Related origins: serve this at https://" {move || rp_id.get()} "/.well-known/webauthn (as application/json), or proxy it from the Server API's GET /api/v1/well-known/webauthn."</p>
            <Transition fallback=|| ()>
                {move || well_known.get().map(|document| {
                    let text = document.unwrap_or_else(|err| err.message);
                    view! { <CopyBlock id="well-known-webauthn" text /> }
                })}
            </Transition>
        </section>
        {can_configure.then(|| view! { <OriginDoctor tenant /> })}
    }
}

/// A document with a Copy button (what a site must serve).
#[component]
fn CopyBlock(id: &'static str, text: String) -> impl IntoView {
    let copied = RwSignal::new(false);
    let value = StoredValue::new(text.clone());
    let copy = move |_| {
        leptos::task::spawn_local(async move {
            copied.set(crate::browser::copy_text(value.get_value()).await);
        });
    };
    view! {
        <pre id=id data-testid=id><code>{text}</code></pre>
        <div class="inline">
            <button type="button" class="secondary" aria-controls=id on:click=copy>"Copy"</button>
            <p class="hint" role="status">{move || copied.get().then_some("Copied to the clipboard.")}</p>
        </div>
    }
}

/// The origin doctor: reads the RP ID site's well-known files and says what matches.
#[component]
fn OriginDoctor(tenant: StoredValue<String>) -> impl IntoView {
    let report = RwSignal::new(None::<Result<OriginCheckView, PortalError>>);
    let busy = RwSignal::new(false);
    let check = move |_| {
        busy.set(true);
        leptos::task::spawn_local(async move {
            report.set(Some(check_origins(tenant.get_value()).await));
            busy.set(false);
        });
    };
    let finding = |f: FindingView| {
        let class = if f.ok {
            "finding ok"
        } else {
            "finding problem"
        };
        let mark = if f.ok { "✓ " } else { "✗ " };
        view! { <li class=class><span aria-hidden="true">{mark}</span><span class="visually-hidden">{if f.ok { "OK: " } else { "Problem: " }}</span>{f.message}</li> }
    };
    view! {
        <section class="card stack" aria-labelledby="doctor-heading">
            <h2 id="doctor-heading">"Origin doctor"</h2>
            <p>
                "Reads /.well-known/webauthn, assetlinks.json and apple-app-site-association from the Relying Party ID's site (as far as the saved related origins, Android origins and iOS app IDs need them) and says what matches."
            </p>
            <div class="inline">
                <button type="button" class="secondary" disabled=move || busy.get() on:click=check>"Check"</button>
                <p class="hint" role="status">{move || busy.get().then_some("Checking…")}</p>
            </div>
            <div data-testid="doctor-report" aria-live="polite">
                {move || report.get().map(|r| match r {
                    Err(err) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                    Ok(r) => view! {
                        <p class=if r.ok { "status ok" } else { "status problem" }>
                            {if r.ok { "Everything matches." } else { "Some things need fixing." }}
                        </p>
                        <ul class="findings">{r.origins.into_iter().map(finding).collect_view()}</ul>
                        {r.files.into_iter().map(|f| view! {
                            <h3>{f.name} " — " {if f.ok { "OK" } else { "needs fixing" }}</h3>
                            <p><small>{f.url}</small></p>
                            <ul class="findings">{f.findings.into_iter().map(finding).collect_view()}</ul>
                        }).collect_view()}
                    }.into_any(),
                })}
            </div>
        </section>
    }
}

/// Asks the browser's confirmation dialog (always "yes" where there is no browser).
fn browser_confirm(message: &str) -> bool {
    #[cfg(feature = "hydrate")]
    return leptos::prelude::window()
        .confirm_with_message(message)
        .unwrap_or(false);
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = message;
        true
    }
}
