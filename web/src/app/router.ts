// Hash routing: deep links (#/tasks/mnist) work without any server-side fallback. The tasks list
// and the model library come with the app (the library holds models kept in this browser, so it
// must open while the server is out of reach); other pages are loaded on first visit, and when
// that fails (server or network gone) `navigationError` says so and App.vue offers to try again.
import { shallowRef } from "vue";
import { createRouter, createWebHashHistory } from "vue-router";
import { INVITATION_PATTERN, keepInvitation } from "./composables/invitations";
import LibraryPage from "./pages/LibraryPage.vue";
import TasksPage from "./pages/TasksPage.vue";

/** The address of the file a failed dynamic import asked for, from the browser's message. */
function failedUrl(error: unknown): string | null {
  const m = /(https?:\/\/[^\s'"]+?\.js)\b/.exec(error instanceof Error ? error.message : String(error));
  return m?.[1] ?? null;
}

/**
 * A page loaded on first visit. A browser remembers a failed dynamic import and fails it again
 * without asking the server, so "Try again" could never succeed; after a failure the page's
 * file is asked for again under a fresh address (`?retry=N`: the same file to the server).
 */
function onFirstVisit<T>(load: () => Promise<T>): () => Promise<T> {
  let failed: string | null = null;
  let attempt = 0;
  return async () => {
    if (failed !== null) {
      attempt += 1;
      return (await import(/* @vite-ignore */ `${failed}?retry=${attempt}`)) as T;
    }
    try {
      return await load();
    } catch (e) {
      failed = failedUrl(e);
      throw e;
    }
  };
}

export const router = createRouter({
  history: createWebHashHistory(),
  routes: [
    { path: "/", name: "tasks", component: TasksPage, meta: { title: "Tasks" } },
    {
      path: "/tasks/:id/:step?",
      name: "task",
      component: onFirstVisit(() => import("./pages/TaskPage.vue")),
      props: true,
      meta: { title: "Task" },
    },
    {
      // a join link (`#/join/<task id>?invitation=<token>`, from the person who runs a private
      // server): the invitation is kept for the task, the address bar loses it (the redirect
      // replaces the link's history entry) and the task opens; JoinPage says what is wrong with
      // a link that holds no whole invitation
      path: "/join/:taskId",
      name: "join",
      component: onFirstVisit(() => import("./pages/JoinPage.vue")),
      props: true,
      meta: { title: "Join a task" },
      beforeEnter: (to) => {
        const taskId = String(to.params["taskId"]);
        const token = to.query["invitation"];
        if (typeof token === "string" && INVITATION_PATTERN.test(token) && keepInvitation(taskId, token)) {
          return { name: "task", params: { id: taskId }, replace: true };
        }
        // no whole invitation: nothing worth keeping in the address bar either
        return Object.keys(to.query).length ? { name: "join", params: { taskId }, replace: true } : true;
      },
    },
    {
      // a text model writes: a prompt, the continuation token by token (`?model=<library id>`)
      path: "/try/:id",
      name: "try",
      component: onFirstVisit(() => import("./pages/TryPage.vue")),
      props: true,
      meta: { title: "Try the model" },
    },
    {
      path: "/library",
      name: "library",
      component: LibraryPage,
      meta: { title: "Model library" },
    },
    {
      path: "/create",
      name: "create",
      component: onFirstVisit(() => import("./pages/CreateTaskPage.vue")),
      meta: { title: "Create a task" },
    },
    {
      path: "/:rest(.*)*",
      name: "not-found",
      component: onFirstVisit(() => import("./pages/NotFoundPage.vue")),
      meta: { title: "Page not found" },
    },
  ],
  scrollBehavior: () => ({ top: 0 }),
});

/** A navigation that failed (the page could not be loaded), for the banner in App.vue. */
export interface NavigationError {
  /** Where the user wanted to go. */
  target: string;
  /** The page's title, in words. */
  page: string;
  message: string;
}

/** The last failed navigation, until a navigation succeeds or it is dismissed. */
export const navigationError = shallowRef<NavigationError | null>(null);

router.onError((error: unknown, to) => {
  const page = typeof to.meta.title === "string" ? to.meta.title : "This page";
  const detail = error instanceof Error ? error.message : String(error);
  console.warn(`disco: navigation to ${to.fullPath} failed: ${detail}`);
  navigationError.value = {
    target: to.fullPath,
    page,
    message:
      "It could not be loaded: the disco server may be unreachable or your connection may be down. Check your connection, then try again.",
  };
});

router.afterEach((to, _from, failure) => {
  if (failure) return;
  navigationError.value = null;
  const title = typeof to.meta.title === "string" ? to.meta.title : "";
  document.title = title ? `${title} · disco` : "disco";
});
