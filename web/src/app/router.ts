// Hash routing: deep links (#/tasks/mnist) work without any server-side fallback. Pages other
// than the tasks list are loaded on first visit; when that fails (server or network gone),
// `navigationError` says so and App.vue shows it with a way to try again.
import { shallowRef } from "vue";
import { createRouter, createWebHashHistory } from "vue-router";
import TasksPage from "./pages/TasksPage.vue";

export const router = createRouter({
  history: createWebHashHistory(),
  routes: [
    { path: "/", name: "tasks", component: TasksPage, meta: { title: "Tasks" } },
    {
      path: "/tasks/:id/:step?",
      name: "task",
      component: () => import("./pages/TaskPage.vue"),
      props: true,
      meta: { title: "Task" },
    },
    {
      path: "/library",
      name: "library",
      component: () => import("./pages/LibraryPage.vue"),
      meta: { title: "Model library" },
    },
    {
      path: "/create",
      name: "create",
      component: () => import("./pages/CreateTaskPage.vue"),
      meta: { title: "Create a task" },
    },
    {
      path: "/:rest(.*)*",
      name: "not-found",
      component: () => import("./pages/NotFoundPage.vue"),
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
