package dashboard

import (
	"net/http"
	"net/url"
	"strings"

	"gatehouse"
	"gatehouse/views"
)

func (d *Dashboard) groupsShell(title string) views.Shell {
	return views.Shell{Title: title, Nav: views.NavGroups}
}

func (d *Dashboard) handleGroups(w http.ResponseWriter, r *http.Request) {
	page := gatehouse.Page{Page: pageParam(r), PageSize: pageSize}
	groups, total, err := d.b.ListGroups(r.Context(), page)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	data := views.GroupsData{Groups: groups, Services: map[string]int{},
		Pager: views.Pager{Page: page.Page, PageSize: pageSize, Total: total, Base: views.GroupsURL()}}
	for _, g := range groups {
		_, n, err := d.b.ListServices(r.Context(), gatehouse.ServiceFilter{GroupID: g.ID}, gatehouse.Page{Page: 1, PageSize: 1})
		if err != nil {
			d.fail(w, r, err)
			return
		}
		data.Services[g.ID] = n
	}
	d.render(w, r, http.StatusOK, d.groupsShell("Service groups"), views.GroupsPage(data), nil)
}

// handleGroup shows one group's services.
func (d *Dashboard) handleGroup(w http.ResponseWriter, r *http.Request) {
	g, err := d.b.GetGroup(r.Context(), r.PathValue("id"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	page := gatehouse.Page{Page: pageParam(r), PageSize: pageSize}
	list, total, err := d.b.ListServices(r.Context(), gatehouse.ServiceFilter{GroupID: g.ID}, page)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	data := views.ServicesData{Services: list, Groups: map[string]string{g.ID: g.Name}, Group: &g,
		Pager: views.Pager{Page: page.Page, PageSize: pageSize, Total: total, Base: views.GroupURL(g.ID), Query: url.Values{}}}
	d.render(w, r, http.StatusOK, d.groupsShell(g.Name), views.ServicesPage(data), nil)
}

func (d *Dashboard) handleGroupNew(w http.ResponseWriter, r *http.Request) {
	f := views.GroupForm{}
	d.render(w, r, http.StatusOK, d.groupsShell("New group"), views.GroupFormPage(f), nil)
}

func (d *Dashboard) handleGroupEdit(w http.ResponseWriter, r *http.Request) {
	g, err := d.b.GetGroup(r.Context(), r.PathValue("id"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	f := views.GroupForm{Edit: true, ID: g.ID, Name: g.Name, Description: g.Description}
	d.render(w, r, http.StatusOK, d.groupsShell("Edit "+g.Name), views.GroupFormPage(f), nil)
}

func (d *Dashboard) handleGroupCreate(w http.ResponseWriter, r *http.Request) {
	d.saveGroup(w, r, nil)
}

func (d *Dashboard) handleGroupUpdate(w http.ResponseWriter, r *http.Request) {
	g, err := d.b.GetGroup(r.Context(), r.PathValue("id"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.saveGroup(w, r, &g)
}

func (d *Dashboard) saveGroup(w http.ResponseWriter, r *http.Request, existing *gatehouse.Group) {
	f := views.GroupForm{
		Edit: existing != nil, ID: strings.TrimSpace(r.PostFormValue("id")),
		Name: r.PostFormValue("name"), Description: r.PostFormValue("description"),
	}
	g := gatehouse.Group{ID: f.ID}
	if existing != nil {
		g = *existing
		f.ID = g.ID
	}
	g.Name, g.Description = strings.TrimSpace(f.Name), f.Description
	var err error
	if existing != nil {
		err = d.b.UpdateGroup(r.Context(), &g)
	} else {
		err = d.b.CreateGroup(r.Context(), &g)
	}
	if e := userError(err); e != nil {
		if e.Kind == gatehouse.KindConflict && e.Field == "" {
			e = &gatehouse.Error{Kind: e.Kind, Field: "id", Message: e.Message}
		}
		f.Errors = views.ErrorsFrom(e, views.GroupFormFields...)
		d.render(w, r, http.StatusUnprocessableEntity, d.groupsShell("Group"), views.GroupFormPage(f), views.GroupFormEl(f))
		return
	}
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.done(w, r, views.GroupsURL())
}

func groupDeleteConfirm(g gatehouse.Group) views.ConfirmDelete {
	return views.ConfirmDelete{Kind: "group", Name: g.Name, Detail: "Only a group without services can be deleted.",
		Action: views.GroupDeleteURL(g.ID), CancelURL: views.GroupsURL()}
}

func (d *Dashboard) handleGroupDeleteConfirm(w http.ResponseWriter, r *http.Request) {
	g, err := d.b.GetGroup(r.Context(), r.PathValue("id"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.render(w, r, http.StatusOK, d.groupsShell("Delete "+g.Name), views.ConfirmDeletePage(groupDeleteConfirm(g)), nil)
}

func (d *Dashboard) handleGroupDelete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := d.b.DeleteGroup(r.Context(), id)
	if e := userError(err); e != nil {
		g, gerr := d.b.GetGroup(r.Context(), id)
		if gerr != nil {
			d.fail(w, r, gerr)
			return
		}
		c := groupDeleteConfirm(g)
		c.Error = e.Message
		d.render(w, r, http.StatusConflict, d.groupsShell("Delete "+g.Name), views.ConfirmDeletePage(c), views.ConfirmDeletePanel(c))
		return
	}
	if err != nil {
		d.fail(w, r, err)
		return
	}
	d.done(w, r, views.GroupsURL())
}
