use leptos::prelude::*;
use leptos_router::components::A;

/// The frame of every page: a skip link, the header with navigation, and the main region.
#[component]
pub fn Layout(children: Children) -> impl IntoView {
    let menu_open = RwSignal::new(false);
    // Effects only run in the browser, so this flips once the page is hydrated and interactive.
    // End-to-end tests wait for it; it also lets CSS hide controls that need JavaScript.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));

    view! {
        <a class="skip-link" href="#main">"Skip to content"</a>
        <header class="site-header">
            <a class="brand" href="/">
                <img class="brand-mark" src="/favicon.svg" alt="" width="28" height="28" />
                "Latchkey"
            </a>
            <button
                class="menu-toggle"
                type="button"
                aria-controls="primary-nav"
                aria-expanded=move || menu_open.get().to_string()
                on:click=move |_| menu_open.update(|open| *open = !*open)
            >
                "Menu"
            </button>
            <nav
                id="primary-nav"
                aria-label="Primary"
                class:open=move || menu_open.get()
            >
                <A href="/" exact=true>"Home"</A>
            </nav>
        </header>
        <main id="main" data-hydrated=move || hydrated.get().to_string()>
            {children()}
        </main>
        <footer class="site-footer">
            <p>"Latchkey — self-hosted passkeys."</p>
        </footer>
    }
}
