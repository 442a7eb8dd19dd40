"""Pages linked from the chat's emails (one-click unsubscribe). An interface: it calls the
services and the core, never another interface."""
