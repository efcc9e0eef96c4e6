use leptos::{prelude::*, task::spawn_local};
use leptos_router::hooks::use_location;

use crate::{
    api::{OperatorView, sign_out, whoami},
    browser,
};

/// The frame of every page: a skip link, the header with navigation and the signed-in
/// operator's controls, and the main region.
#[component]
pub fn Layout(children: Children) -> impl IntoView {
    let menu_open = RwSignal::new(false);
    // Effects only run in the browser, so this flips once the page is hydrated and interactive.
    // End-to-end tests wait for it; it also lets CSS hide controls that need JavaScript.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    let operator = Resource::new(|| (), |_| whoami());
    // Read here, not in the header: that renders inside a `Suspend`, where router hooks may find
    // no router during server rendering (see `pages::tenants::TenantNav`).
    let path = use_location().pathname;

    view! {
        <a class="skip-link" href="#main">"Skip to content"</a>
        <header class="site-header">
            <a class="brand" href="/">
                <img class="brand-mark" src="/favicon.svg" alt="" width="28" height="28" />
                "Latchkey"
            </a>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    operator
                        .await
                        .ok()
                        .flatten()
                        .map(|operator| view! { <SignedInHeader operator menu_open path /> })
                })}
            </Suspense>
        </header>
        <main id="main" data-hydrated=move || hydrated.get().to_string()>
            // Forms stay disabled until the page has hydrated (`forms::JsControls`); without
            // JavaScript they never come alive, so say why. Hidden unless the `<noscript>` style in
            // the page's head shows it (a `<noscript>` here would not hydrate: with scripting on,
            // browsers parse its content as text).
            <p class="error js-notice" role="alert">
                "The Latchkey portal needs JavaScript: passkeys are created and used through the \
                 browser's JavaScript API. Turn JavaScript on for this site and reload."
            </p>
            {children()}
        </main>
        <footer class="site-footer">
            <p>"Latchkey — self-hosted passkeys."</p>
        </footer>
    }
}

#[component]
fn SignedInHeader(
    operator: OperatorView,
    menu_open: RwSignal<bool>,
    path: Memo<String>,
) -> impl IntoView {
    let failed = RwSignal::new(None::<String>);
    let on_sign_out = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        spawn_local(async move {
            match sign_out().await {
                Ok(()) => browser::navigate_to("/login"),
                Err(err) => failed.set(Some(err.message)),
            }
        });
    };
    let admin = operator.is_instance_admin;
    view! {
        <button
            class="menu-toggle"
            type="button"
            aria-controls="primary-nav"
            aria-expanded=move || menu_open.get().to_string()
            on:click=move |_| menu_open.update(|open| *open = !*open)
        >
            "Menu"
        </button>
        <nav id="primary-nav" aria-label="Primary" class:open=move || menu_open.get()>
            <NavLink href="/" path exact=true>"Home"</NavLink>
            <NavLink href="/tenants" path>"Tenants"</NavLink>
            {admin.then(|| view! {
                <NavLink href="/operators" path>"Operators"</NavLink>
                <NavLink href="/audit" path>"Audit log"</NavLink>
                <NavLink href="/metadata" path>"FIDO metadata"</NavLink>
            })}
            <NavLink href="/security" path>"Security"</NavLink>
            <span class="whoami" title=operator.email.clone()>{operator.display_name}</span>
            // A real form: without JavaScript it still posts to the server function.
            <form method="post" action="/portal/api/sign_out" on:submit=on_sign_out>
                <button type="submit" class="secondary">"Sign out"</button>
            </form>
            {move || failed.get().map(|m| view! { <span class="error" role="alert">{m}</span> })}
        </nav>
    }
}

/// A navigation link marked `aria-current="page"` on its page (or below it, unless `exact`).
/// A plain link: the router navigates it in the browser without hooks of its own.
#[component]
fn NavLink(
    href: &'static str,
    path: Memo<String>,
    #[prop(optional)] exact: bool,
    children: Children,
) -> impl IntoView {
    let current = move || {
        path.with(|p| {
            let here = p == href || (!exact && p.starts_with(&format!("{href}/")));
            here.then_some("page")
        })
    };
    view! { <a href=href aria-current=current>{children()}</a> }
}
